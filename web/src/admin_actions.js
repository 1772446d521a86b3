// The dashboard's two changes, for an admin key only: stop a session (DELETE /sessions/{id}) and roll the
// releases back (POST /releases/rollback). Each is asked first: a confirmation naming what will happen,
// then the request, sent from this page (its own Origin, which the dispatcher's cross-site guard lets
// through) with the key as a bearer token. The dispatcher decides and audits: a stop (of any key's
// session) is on the session audit trail (GET /audit/sessions), a rollback on the releases' (GET
// /releases/history), each under the admin key's id. A client key is refused there whatever the page shows.

import { element } from "./dom.js";

const ACTIVE = new Set(["starting", "started", "joined"]);
// The confirming button takes no click this long after the question appears: the second click of a
// double click, or Enter held on the action's button, is not a confirmation.
export const ARM_MS = 500;

export function stoppable(session) {
  return ACTIVE.has(session?.status);
}

export function stopSession(sessionId, send) {
  return {
    session: sessionId,
    label: "Stop the session",
    say: `Stop session ${sessionId}? Its bot is stopped and its call ends for the caller now. `
      + "The stop is on the session audit trail under your admin key.",
    async run() {
      const answer = await send("DELETE", `/sessions/${encodeURIComponent(sessionId)}`);
      return answer.status === 202 ? `Session ${sessionId}: stopping (its machine is being stopped).`
        : `Session ${sessionId}: stopped.`;
    },
  };
}

// The releases a rollback takes traffic from (GET /releases's answer): every other release with a
// weight, or, when the stable one takes it all, the stable one itself, back to `previous_stable` (none
// there, no button: the dispatcher would refuse; a dispatcher that does not say: any other release).
export function rolledBackFrom(answer) {
  const releases = answer?.releases || [];
  const stable = releases.find((r) => r.stable);
  if (!stable) return [];
  if (stable.weight !== 100) return releases.filter((r) => !r.stable && r.weight > 0).map((r) => r.name);
  const back = "previous_stable" in (answer || {}) ? releases.some((r) => r.name === answer.previous_stable)
    : releases.length > 1;
  return back ? [stable.name] : [];
}

export function rollBack(answer, send) {
  const releases = answer?.releases || [];
  const stable = releases.find((r) => r.stable)?.name ?? answer?.stable;
  const others = releases.filter((r) => !r.stable && r.weight > 0);
  const what = others.length
    ? `every new session goes to the stable release ${stable} (100 %): `
      + `${others.map((r) => `${r.name} from ${r.weight} % to 0 %`).join(", ")}`
    : answer?.previous_stable
      ? `every new session goes back to ${answer.previous_stable} (100 %), the release that was stable before `
        + `${stable} was promoted, which becomes the stable one again; ${stable} from 100 % to 0 %`
      : `every new session goes back to the release that was stable before ${stable} was promoted, which becomes `
        + `the stable one again (the dispatcher refuses when there is none)`;
  return {
    label: "Roll back",
    say: `Roll back the releases? ${what}. Sessions already running keep their release. `
      + "The change is on the releases' audit trail under your admin key.",
    async run() {
      // What was named is what is rolled back: the dispatcher refuses (409 releases_changed) when the
      // traffic is no longer the version this was asked about, in the same write as the rollback.
      const changed = (await send("POST", "/releases/rollback", { version: answer?.version })).body || {};
      return `Rolled back: ${changed.reason || `stable: ${changed.stable}`}.`;
    },
  };
}

function button(text, className) {
  const node = element("button", text, className);
  node.type = "button";
  return node;
}

// A button that asks `confirm` (a confirmer's) for the action `make()` returns when clicked.
export function actionButton(text, confirm, make) {
  const node = button(text, "admin-action");
  node.addEventListener("click", () => confirm.ask(make()));
  return node;
}

// The confirmation step, drawn in `box` when asked (nothing there before), and its outcome in `outcome`.
// After each confirmed action, whether it worked or not, its own `after` (if any) and `done` are called
// (the page reads again what it changed). Asking again replaces the question: only the action last
// asked about can be confirmed, once, and not before ARM_MS; the focus goes to Cancel.
export function confirmer(box, outcome, done = () => {}) {
  box.replaceChildren();
  box.hidden = true;

  let asked = null;  // the action whose question is shown, until it is answered
  let questions = 0;  // each question's number: a timer arms only its own

  function close() {
    asked = null;
    box.replaceChildren();
    box.hidden = true;
  }

  // The question withdrawn, unanswered, when `stale(action)` says it no longer fits what the page
  // shows (a stop asked about a session that is no longer the one open).
  function withdraw(stale, why = "what was asked about is no longer shown") {
    if (asked === null || !stale(asked)) return;
    close();
    outcome.textContent = `Cancelled (${why}): nothing was changed.`;
  }

  function ask(action) {
    const question = document.createElement("p");
    question.className = "confirm-what";
    question.textContent = action.say;
    const yes = button(action.label, "danger confirm-yes");
    const no = button("Cancel", "confirm-no");
    const number = ++questions;
    yes.disabled = true;
    setTimeout(() => {
      if (questions === number && asked === action) yes.disabled = false;
    }, ARM_MS);
    yes.addEventListener("click", async () => {
      asked = null;  // answered: it is sent, whatever the page opens meanwhile
      yes.disabled = no.disabled = true;
      try {
        outcome.textContent = await action.run();
      } catch (error) {
        outcome.textContent = `Refused: ${error.message}${error.code ? ` (${error.code})` : ""}`;
      } finally {
        if (box.contains(yes)) close();
        action.after?.();
        done();
      }
    }, { once: true });
    no.addEventListener("click", () => {
      close();
      outcome.textContent = "Cancelled: nothing was changed.";
    }, { once: true });
    box.replaceChildren(question, yes, " ", no);
    asked = action;
    outcome.textContent = "";
    box.hidden = false;
    no.focus();
  }

  return { ask, withdraw };
}
