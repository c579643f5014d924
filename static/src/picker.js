// People picker: an <input data-people-picker name="..."> becomes an accessible typeahead over
// /api/people (only the people the server lets this person find). Choosing puts the username in
// the input, so the form works the same with or without this script; the chosen person's id is
// kept in data-person-id for pages that send ids.
let serial = 0;

function label(person) {
  return `${person.name} · ${person.role}${person.specialty ? ` (${person.specialty})` : ""} · ${person.organisation}`;
}

function enhance(input) {
  const id = `people-picker-${++serial}`;
  const list = document.createElement("ul");
  list.id = id;
  list.className = "picker-list";
  list.setAttribute("role", "listbox");
  list.hidden = true;
  input.after(list);
  input.setAttribute("role", "combobox");
  input.setAttribute("aria-autocomplete", "list");
  input.setAttribute("aria-expanded", "false");
  input.setAttribute("aria-controls", id);
  input.autocomplete = "off";
  let found = [];
  let active = -1;
  let asked = 0;

  const close = () => {
    list.hidden = true;
    input.setAttribute("aria-expanded", "false");
    input.removeAttribute("aria-activedescendant");
    active = -1;
  };
  const highlight = (index) => {
    active = index;
    [...list.children].forEach((li, i) => li.setAttribute("aria-selected", String(i === index)));
    if (index >= 0) input.setAttribute("aria-activedescendant", `${id}-${index}`);
  };
  const choose = (person) => {
    input.value = person.username;
    input.dataset.personId = String(person.id);
    close();
    input.dispatchEvent(new Event("change", { bubbles: true }));
  };
  const show = () => {
    list.replaceChildren(
      ...found.map((person, i) => {
        const li = document.createElement("li");
        li.id = `${id}-${i}`;
        li.setAttribute("role", "option");
        li.setAttribute("aria-selected", "false");
        li.textContent = label(person);
        // mousedown, not click: the input's blur would close the list first.
        li.addEventListener("mousedown", (event) => {
          event.preventDefault();
          choose(person);
        });
        return li;
      }),
    );
    if (!found.length) {
      const li = document.createElement("li");
      li.className = "muted";
      li.textContent = "Nobody you can find matches.";
      list.append(li);
    }
    list.hidden = false;
    input.setAttribute("aria-expanded", "true");
    highlight(found.length ? 0 : -1);
  };
  input.addEventListener("input", async () => {
    delete input.dataset.personId;
    const text = input.value.trim();
    if (text.length < 2) return close();
    const mine = ++asked;
    const response = await fetch(`/api/people?q=${encodeURIComponent(text)}&limit=20`, {
      headers: { Accept: "application/json" },
    });
    if (mine !== asked || !response.ok) return; // a later keystroke has asked again
    found = await response.json();
    show();
  });
  input.addEventListener("keydown", (event) => {
    if (list.hidden) return;
    if (event.key === "ArrowDown" || event.key === "ArrowUp") {
      event.preventDefault();
      if (!found.length) return;
      const step = event.key === "ArrowDown" ? 1 : -1;
      highlight((active + step + found.length) % found.length);
    } else if (event.key === "Enter" && active >= 0) {
      event.preventDefault();
      choose(found[active]);
    } else if (event.key === "Escape") {
      close();
    }
  });
  input.addEventListener("blur", close);
}

for (const input of document.querySelectorAll("input[data-people-picker]")) enhance(input);
