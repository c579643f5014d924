// Times as people in UK hospitals read them: 24-hour clock, UK local time (summer time
// included), whatever the browser's own language or time zone. Stored times are UTC.
const UK = { timeZone: "Europe/London", hourCycle: "h23" };
const time = new Intl.DateTimeFormat("en-GB", { ...UK, hour: "2-digit", minute: "2-digit", second: "2-digit" });
const dateTime = new Intl.DateTimeFormat("en-GB", {
  ...UK,
  day: "numeric",
  month: "short",
  year: "numeric",
  hour: "2-digit",
  minute: "2-digit",
});

/** 14:05:09 */
export const ukTime = (when) => time.format(new Date(when));
/** 3 Dec 2026, 14:05 */
export const ukDateTime = (when) => dateTime.format(new Date(when));
