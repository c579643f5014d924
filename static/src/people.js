// The "who is here" list and the follow / present controls around it.

const NOT_PRESENTING = "Read-only participants can't present; ask the presenter to hand over.";

export function bindPeople({ presence, list, banner, presenting, requests }) {
  const render = () => {
    if (requests) renderRequests(presence, requests);
    const me = presence.clientId();
    const presenter = presence.presenter();
    const items = presence.people().map((person) => {
      const item = document.createElement("li");
      item.dataset.clientId = person.clientId;
      item.dataset.userId = person.user.id;
      item.style.setProperty("--colour", person.user.colour);
      const name = document.createElement("span");
      name.className = "name";
      name.textContent = person.user.name + (person.clientId === me ? " (you)" : "");
      name.title = name.textContent; // one line, cut short when the panel is narrow
      const about = document.createElement("span");
      about.className = "about";
      about.textContent = [person.user.role, person.user.organisation].filter(Boolean).join(" · ");
      item.append(name, about);
      if (person.presenting) {
        const badge = document.createElement("span");
        badge.className = "badge";
        badge.textContent = "presenting";
        item.append(badge);
      }
      if (person.clientId !== me) {
        const following = presence.following === person.clientId;
        const button = document.createElement("button");
        button.type = "button";
        button.className = "follow";
        button.textContent = following ? "Stop following" : "Follow";
        button.setAttribute("aria-pressed", String(following));
        button.addEventListener("click", () => (following ? presence.unfollow() : presence.follow(person.clientId)));
        item.append(button);
        if (presence.isPresenting() && person.ask && person.ask.to === me) {
          const grant = document.createElement("button");
          grant.type = "button";
          grant.className = "grant";
          grant.textContent = "Hand over";
          grant.title = `${person.user.name} asks to present`;
          grant.addEventListener("click", () => presence.handOver(person.clientId));
          item.append(grant);
        }
      }
      return item;
    });
    list.replaceChildren(...items);

    // Presenting controls: present, ask, hand over, take back, bring everyone here.
    const controls = [];
    const button = (label, id, action) => {
      const b = document.createElement("button");
      b.type = "button";
      b.id = id;
      b.textContent = label;
      b.addEventListener("click", action);
      controls.push(b);
    };
    const mayPresent = presence.mayPresent();
    if (presence.isPresenting()) {
      button("Bring everyone here", "bring-everyone", () => presence.bringEveryone());
      button("Stop presenting", "stop-presenting", () => presence.stopPresenting());
    } else if (!presenter) {
      button("Present", "present", () => presence.present());
    } else {
      const asked = (presence.awareness.getLocalState() || {}).ask;
      if (presence.handedOverTo === presenter.clientId) {
        button("Take back", "take-back", () => presence.takeBack());
      } else {
        button(asked ? "Asked to present" : "Ask to present", "ask-to-present", () => presence.askToPresent());
        if (!asked && presence.declinedBy) {
          const declined = document.createElement("p");
          declined.className = "muted why";
          declined.id = "ask-declined";
          declined.textContent = `${presence.declinedBy} declined your request to present.`;
          controls.push(declined);
        }
      }
      if (presence.following !== presenter.clientId) {
        button(`Follow ${presenter.user.name}`, "follow-presenter", () => presence.follow(presenter.clientId));
      }
    }
    // Shown, not hidden, to those who may not present: disabled, saying why.
    if (!mayPresent && !presence.isPresenting()) {
      button("Bring everyone here", "bring-everyone", () => presence.bringEveryone());
      for (const b of controls) {
        if (b.id !== "present" && b.id !== "bring-everyone") continue;
        b.disabled = true;
        b.title = NOT_PRESENTING;
        b.setAttribute("aria-describedby", "present-why");
      }
      const why = document.createElement("p");
      why.id = "present-why";
      why.className = "muted why";
      why.textContent = NOT_PRESENTING;
      controls.push(why);
    }
    presenting.replaceChildren(...controls);

    // "You are off the presenter's view": shown when following but panned away.
    const followed = presence.following !== null ? presence.state(presence.following) : null;
    banner.hidden = !(followed && presence.offView);
    if (followed) banner.querySelector(".whom").textContent = followed.user.name;
  };
  banner.querySelector("button").addEventListener("click", () => presence.returnToView());
  presence.addEventListener("people", render);
  presence.addEventListener("follow", render);
  render();
}

// Over the slide, where the presenter looks (the side panel may be folded away): each request
// to present, with Accept (hand over, then follow the new presenter) and Decline.
function renderRequests(presence, box) {
  const items = presence.pendingAsks().map((person) => {
    const item = document.createElement("div");
    item.className = "present-request";
    item.dataset.clientId = person.clientId;
    const text = document.createElement("span");
    text.textContent = `${person.user.name} asks to present.`;
    const accept = document.createElement("button");
    accept.type = "button";
    accept.className = "accept";
    accept.textContent = "Accept";
    accept.title = `Hand over to ${person.user.name}; you then follow them`;
    accept.addEventListener("click", () => presence.handOver(person.clientId));
    const decline = document.createElement("button");
    decline.type = "button";
    decline.className = "decline";
    decline.textContent = "Decline";
    decline.addEventListener("click", () => presence.declineAsk(person.clientId));
    item.append(text, accept, decline);
    return item;
  });
  box.replaceChildren(...items);
}
