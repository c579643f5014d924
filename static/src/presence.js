// Who is here, where they look, whom they follow, and who presents. All of it is
// awareness state (never the stored document), sent at most ~20 times a second.

const SEND_EVERY_MS = 50;
// The server names everyone in these colours too (collab/sync/presence.py COLOURS).
const COLOURS = ["#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#008080", "#f032e6", "#9a6324"];

export function colourFor(userId) {
  return COLOURS[Math.abs(Number(userId) || 0) % COLOURS.length];
}

// Sends the latest value of each field, throttled, so a fast pan costs ~20 messages a second.
class Throttled {
  constructor(awareness) {
    this.awareness = awareness;
    this.pending = {};
    this.timer = null;
    this.last = 0;
  }

  set(field, value) {
    this.pending[field] = value;
    const wait = this.last + SEND_EVERY_MS - performance.now();
    if (wait <= 0) this.flush();
    else if (!this.timer) this.timer = setTimeout(() => this.flush(), wait);
  }

  flush() {
    clearTimeout(this.timer);
    this.timer = null;
    this.last = performance.now();
    const state = this.awareness.getLocalState() || {};
    this.awareness.setLocalState({ ...state, ...this.pending });
    this.pending = {};
  }
}

export class Presence extends EventTarget {
  // ``rights.present``: contributors and the meeting's chair present; anyone else only once the
  // presenter hands over (the server turns off anyone else's presenting, docs/sync.md).
  constructor(awareness, me, slideView, rights = {}) {
    super();
    this.awareness = awareness;
    this.me = me;
    this.slideView = slideView;
    this.presentsByRight = rights.present !== false;
    this.granted = false;
    this.out = new Throttled(awareness);
    this.following = null; // client id
    this.offView = false; // following, but panned away
    this.applying = false; // moving because of the followed person, not the user
    this.seenSummons = new Map();
    this.seenGrants = new Map();
    this.seenTakeBacks = new Map();
    this.seenDeclines = new Map();
    this.declinedAsks = new Map(); // client id -> the ``at`` of their ask this presenter declined
    this.declinedBy = null; // the name of the presenter who declined this person's ask
    awareness.setLocalState({
      // As the server names this person (it replaces any other ``user``).
      user: { id: me.id, name: me.name, role: me.role, organisation: me.organisation ?? null, colour: colourFor(me.id) },
      view: null,
      pointer: null,
      follow: null,
      presenting: false,
      ask: null,
      grant: null,
      decline: null,
      summon: null,
      takeBack: null,
    });
    awareness.on("change", () => this.changed());
    slideView.addEventListener("view", () => this.viewChanged());
    // The user's own gestures break away from a followed view.
    const viewer = slideView.viewer;
    for (const event of ["canvas-drag", "canvas-scroll", "canvas-key", "canvas-pinch"]) {
      viewer.addHandler(event, () => this.breakAway());
    }
  }

  clientId() {
    return this.awareness.clientID;
  }

  people() {
    const list = [];
    for (const [clientId, state] of this.awareness.getStates()) {
      if (state && state.user) list.push({ clientId, ...state });
    }
    return list.sort((a, b) => (a.user.name || "").localeCompare(b.user.name || "") || a.clientId - b.clientId);
  }

  state(clientId) {
    return this.awareness.getStates().get(clientId) || null;
  }

  presenter() {
    return this.people().find((p) => p.presenting) || null;
  }

  isPresenting() {
    return Boolean((this.awareness.getLocalState() || {}).presenting);
  }

  mayPresent() {
    return this.presentsByRight || this.granted;
  }

  viewChanged() {
    const view = this.slideView.view();
    // Slides side by side travel with the view (static/src/compare.js).
    const grid = this.gridOf ? this.gridOf() : null;
    if (view && grid) view.grid = grid;
    // Redraws while tiles arrive also report the view: send only real moves.
    const sameGrid = JSON.stringify(grid) === JSON.stringify(this.sentView?.grid ?? null);
    if (view && this.sentView && sameGrid && sameView(view, this.sentView, 1e5)) return;
    this.sentView = view;
    this.out.set("view", view);
    if (this.following !== null && !this.applying && !this.offView) this.catchUp();
  }

  follow(clientId) {
    this.following = clientId;
    this.offView = false;
    this.out.set("follow", clientId);
    this.catchUp();
    this.dispatchEvent(new Event("follow"));
  }

  unfollow() {
    this.following = null;
    this.offView = false;
    this.out.set("follow", null);
    this.dispatchEvent(new Event("follow"));
  }

  breakAway() {
    if (this.following === null || this.applying || this.offView) return;
    this.offView = true;
    this.dispatchEvent(new Event("follow"));
  }

  returnToView() {
    this.offView = false;
    this.catchUp();
    this.dispatchEvent(new Event("follow"));
  }

  // Jumps without animation: the followed view itself arrives ~20 times a second.
  async catchUp() {
    const target = this.state(this.following);
    if (!target || !target.view) return;
    const grid = target.view.grid ?? null;
    if (JSON.stringify(grid) !== JSON.stringify(this.appliedGrid ?? null)) {
      this.appliedGrid = grid;
      this.dispatchEvent(new CustomEvent("grid", { detail: grid }));
    }
    const mine = this.slideView.view();
    if (mine && sameView(mine, target.view)) return;
    this.applying = true;
    try {
      await this.slideView.goTo(target.view, true);
    } finally {
      // Animation frames of this move still arrive; they are ours, not the user's.
      setTimeout(() => (this.applying = false), 0);
    }
  }

  present() {
    if (!this.mayPresent()) return;
    this.awareness.setLocalStateField("presenting", true);
    this.out.set("ask", null);
  }

  stopPresenting() {
    this.awareness.setLocalStateField("presenting", false);
  }

  askToPresent() {
    const presenter = this.presenter();
    this.declinedBy = null;
    if (presenter) this.out.set("ask", { to: presenter.clientId, at: Date.now() });
    this.dispatchEvent(new Event("people"));
  }

  // Asks addressed to this presenter that they have neither accepted nor declined.
  pendingAsks() {
    if (!this.isPresenting()) return [];
    const me = this.clientId();
    return this.people().filter(
      (p) => p.clientId !== me && p.ask && p.ask.to === me && this.declinedAsks.get(p.clientId) !== p.ask.at,
    );
  }

  // The former presenter follows the new one at once: the room keeps one view.
  handOver(clientId) {
    this.handedOverTo = clientId;
    const state = this.awareness.getLocalState();
    this.awareness.setLocalState({ ...state, presenting: false, grant: { to: clientId, at: Date.now() } });
    this.follow(clientId);
  }

  declineAsk(clientId) {
    const asker = this.state(clientId);
    if (!asker || !asker.ask) return;
    this.declinedAsks.set(clientId, asker.ask.at);
    this.out.set("decline", { to: clientId, at: Date.now() });
    this.out.flush();
    this.dispatchEvent(new Event("people"));
  }

  takeBack() {
    this.handedOverTo = undefined;
    const presenter = this.presenter();
    const state = this.awareness.getLocalState();
    const takeBack = presenter ? { from: presenter.clientId, at: Date.now() } : null;
    this.awareness.setLocalState({ ...state, presenting: true, takeBack });
  }

  bringEveryone() {
    if (!this.mayPresent()) return;
    this.out.set("summon", { at: Date.now(), view: this.slideView.view() });
    this.out.flush();
  }

  changed() {
    const me = this.clientId();
    const previousPresenter = this.lastPresenter;
    for (const person of this.people()) {
      if (person.clientId === me) continue;
      // Hand-over, take-back and "bring everyone here" are one-off signals, acted on once.
      if (person.grant && person.grant.to === me && this.seenGrants.get(person.clientId) !== person.grant.at) {
        this.seenGrants.set(person.clientId, person.grant.at);
        this.granted = true; // the server relays a grant only from someone who may present
        this.awareness.setLocalStateField("presenting", true);
        this.lastGrantedBy = person.clientId;
      }
      if (
        person.takeBack &&
        person.takeBack.from === me &&
        this.seenTakeBacks.get(person.clientId) !== person.takeBack.at
      ) {
        this.seenTakeBacks.set(person.clientId, person.takeBack.at);
        this.granted = false;
        this.awareness.setLocalStateField("presenting", false);
      }
      // The presenter declined this person's ask: it is withdrawn, and they are told who.
      if (person.decline && person.decline.to === me && this.seenDeclines.get(person.clientId) !== person.decline.at) {
        const first = !this.seenDeclines.has(person.clientId);
        this.seenDeclines.set(person.clientId, person.decline.at);
        const asked = (this.awareness.getLocalState() || {}).ask;
        if (asked && asked.to === person.clientId && (!first || person.decline.at >= asked.at)) {
          this.out.set("ask", null);
          this.declinedBy = person.user.name;
        }
      }
      if (person.summon && this.seenSummons.get(person.clientId) !== person.summon.at) {
        const first = !this.seenSummons.has(person.clientId);
        this.seenSummons.set(person.clientId, person.summon.at);
        // A summons older than our arrival is history, not a call.
        if (!first || Date.now() - person.summon.at < 5000) this.follow(person.clientId);
      }
    }
    // Following the presenter means following whoever presents now.
    const presenter = this.presenter();
    this.lastPresenter = presenter ? presenter.clientId : null;
    if (
      presenter &&
      previousPresenter !== undefined &&
      previousPresenter !== null &&
      this.following === previousPresenter &&
      presenter.clientId !== previousPresenter &&
      presenter.clientId !== me
    ) {
      this.follow(presenter.clientId);
    } else if (this.following !== null && !this.state(this.following)) {
      this.unfollow(); // they left
    } else if (this.following !== null && !this.offView) {
      this.catchUp();
    }
    this.dispatchEvent(new Event("people"));
  }
}

// Close enough (within a 1/tolerance of the field) that moving would be a jitter, not a change.
function sameView(a, b, tolerance = 2000) {
  return (
    a.slide === b.slide &&
    Math.abs(a.x - b.x) < b.width / tolerance &&
    Math.abs(a.y - b.y) < b.width / tolerance &&
    Math.abs(a.width - b.width) < b.width / tolerance &&
    Math.abs((a.rotation || 0) - (b.rotation || 0)) < 0.01
  );
}
