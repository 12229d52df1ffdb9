// The Audit page: decide items in place, select ranges, and drive it all from the keyboard.
(function () {
  "use strict";
  const root = document.getElementById("audit");
  if (!root) return;
  const itemsBox = document.getElementById("items");
  const statusBox = document.getElementById("status");
  const blockDialog = document.getElementById("block-dialog");
  const blockForm = document.getElementById("block-form");
  const helpDialog = document.getElementById("help-dialog");
  const canDecide = root.dataset.canDecide === "1";
  let focused = null;
  let lastChecked = null;
  let blockTargets = [];

  const items = () => Array.from(itemsBox.querySelectorAll(".item"));
  const selected = () => items().filter((el) => el.querySelector(".select:checked"));
  const csrfToken = () => (document.cookie.match(/(?:^|; )csrftoken=([^;]+)/) || [])[1] || "";

  function say(message, isError) {
    statusBox.textContent = message;
    statusBox.className = isError ? "error" : "";
  }

  // Focus -----------------------------------------------------------------------------------
  function focus(el) {
    if (!el) return;
    if (focused) focused.classList.remove("focused");
    focused = el;
    el.classList.add("focused");
    el.focus({ preventScroll: true });
    el.scrollIntoView({ block: "nearest" });
  }

  function move(step) {
    const all = items();
    if (!all.length) return;
    const index = all.indexOf(focused);
    focus(all[Math.min(all.length - 1, Math.max(0, index < 0 ? 0 : index + step))]);
  }

  // Selection --------------------------------------------------------------------------------
  function updateSelection() {
    const count = selected().length;
    const counter = document.getElementById("selected-count");
    if (counter) counter.textContent = count ? `${count} selected` : "";
    for (const id of ["batch-pass", "batch-block"]) {
      const button = document.getElementById(id);
      if (button) button.disabled = count === 0;
    }
  }

  itemsBox.addEventListener("click", (event) => {
    const box = event.target.closest(".select");
    if (!box) return;
    const all = items();
    const item = box.closest(".item");
    if (event.shiftKey && lastChecked) {
      // Shift-click: every item between the last click and this one takes this state.
      const [a, b] = [all.indexOf(lastChecked), all.indexOf(item)].sort((x, y) => x - y);
      all.slice(a, b + 1).forEach((el) => { el.querySelector(".select").checked = box.checked; });
    }
    lastChecked = item;
    updateSelection();
  });

  const selectAll = document.getElementById("select-all");
  if (selectAll) {
    selectAll.addEventListener("change", () => {
      items().forEach((el) => { el.querySelector(".select").checked = selectAll.checked; });
      updateSelection();
    });
  }

  // Decisions --------------------------------------------------------------------------------
  async function decide(targets, suggestion, label, note) {
    if (!targets.length) return;
    const versions = {};
    targets.forEach((el) => { versions[el.dataset.taskId] = Number(el.dataset.version); });
    // Move on at once, so a reviewer can keep typing while the decision is saved.
    if (targets.length === 1 && targets[0] === focused) move(1);
    targets.forEach((el) => { const box = el.querySelector(".select"); if (box) box.checked = false; });
    if (selectAll) selectAll.checked = false;
    updateSelection();
    say("Saving…");
    let response;
    try {
      response = await fetch(root.dataset.decideUrl, {
        method: "POST",
        credentials: "same-origin",
        headers: { "Content-Type": "application/json", "X-CSRFToken": csrfToken() },
        body: JSON.stringify({ taskIds: Object.keys(versions), versions, suggestion, label, note }),
      });
    } catch (error) {
      say("Could not reach the server: nothing was saved. Try again.", true);
      return;
    }
    const body = await response.json().catch(() => ({}));
    if (!response.ok) {
      const errors = Object.values(body.errors || {}).flat().join(" ");
      say(errors || `The server said ${response.status}: nothing was saved.`, true);
      return;
    }
    const focusedId = focused && focused.dataset.taskId;
    replaceCards(body.decided);
    replaceCards(body.conflicts);
    const decidedCount = Object.keys(body.decided).length;
    const conflictCount = Object.keys(body.conflicts).length;
    let message = `${decidedCount} item${decidedCount === 1 ? "" : "s"} marked ${suggestion}.`;
    if (conflictCount) message += ` ${conflictCount} already decided by someone else: not changed.`;
    say(message, conflictCount > 0);
    updateSelection();
    // The focused card may have been one of those replaced: focus its new element.
    const again = focusedId && itemsBox.querySelector(`.item[data-task-id="${CSS.escape(focusedId)}"]`);
    if (again) focus(again);
  }

  function replaceCards(cards) {
    for (const [taskId, html] of Object.entries(cards || {})) {
      const old = itemsBox.querySelector(`.item[data-task-id="${CSS.escape(taskId)}"]`);
      if (!old) continue;
      const template = document.createElement("template");
      template.innerHTML = html.trim();
      old.replaceWith(template.content.firstElementChild);
    }
  }

  function targetsFor(el) {
    return el ? [el] : [];
  }

  function openBlock(targets) {
    if (!targets.length) return;
    blockTargets = targets;
    blockForm.reset();
    document.getElementById("block-target").textContent =
      targets.length === 1 ? targets[0].dataset.taskId : `${targets.length} items`;
    blockDialog.showModal();
  }

  blockForm.addEventListener("submit", (event) => {
    event.preventDefault();
    const label = blockForm.elements.label.value;
    if (!label) { say("Pick a category.", true); return; }
    blockDialog.close();
    decide(blockTargets, "block", label, blockForm.elements.note.value);
  });
  document.getElementById("block-cancel").addEventListener("click", () => blockDialog.close());
  blockDialog.addEventListener("keydown", (event) => {
    // b then 1–9: pick the category and block at once (not while typing a note).
    if (event.target.tagName === "TEXTAREA") return;
    const radios = blockForm.querySelectorAll("input[name=label]");
    const index = Number(event.key) - 1;
    if (index >= 0 && index < radios.length) {
      event.preventDefault();
      radios[index].checked = true;
      blockForm.requestSubmit();
    }
  });

  itemsBox.addEventListener("click", (event) => {
    const button = event.target.closest("button[data-action]");
    if (!button) return;
    const item = button.closest(".item");
    focus(item);
    if (button.dataset.action === "pass") decide([item], "pass", "", "");
    else openBlock([item]);
  });

  const batchPass = document.getElementById("batch-pass");
  if (batchPass) batchPass.addEventListener("click", () => decide(selected(), "pass", "", ""));
  const batchBlock = document.getElementById("batch-block");
  if (batchBlock) batchBlock.addEventListener("click", () => openBlock(selected()));

  // Display ----------------------------------------------------------------------------------
  const grayscale = document.getElementById("grayscale");
  function setGrayscale(on) {
    itemsBox.classList.toggle("grayscale", on);
    if (grayscale) grayscale.checked = on;
    try { localStorage.setItem("audit-grayscale", on ? "1" : "0"); } catch (e) { /* private mode */ }
  }
  if (grayscale) {
    grayscale.addEventListener("change", () => setGrayscale(grayscale.checked));
    try { setGrayscale(localStorage.getItem("audit-grayscale") === "1"); } catch (e) { /* ignore */ }
  }
  // Pressing an image shows it unblurred for as long as it is held (touch screens too).
  itemsBox.addEventListener("pointerdown", (event) => {
    const media = event.target.closest(".media");
    if (media) media.classList.add("pressed");
  });
  document.addEventListener("pointerup", () => {
    itemsBox.querySelectorAll(".media.pressed").forEach((m) => m.classList.remove("pressed"));
  });

  const helpButton = document.getElementById("help-button");
  if (helpButton) helpButton.addEventListener("click", () => helpDialog.showModal());

  // Keyboard ---------------------------------------------------------------------------------
  document.addEventListener("keydown", (event) => {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    if (blockDialog.open || helpDialog.open) return;
    if (event.target.closest("input, textarea, select, [contenteditable]")) return;
    const key = event.key;
    if (key === "j") move(1);
    else if (key === "k") move(-1);
    else if (key === "?") helpDialog.showModal();
    else if (key === "g" && grayscale) setGrayscale(!grayscale.checked);
    else if (key === "Enter" && focused) window.location = focused.querySelector("a.open").href;
    else if (!canDecide) return;
    else if (key === "x" && focused) {
      const box = focused.querySelector(".select");
      box.checked = !box.checked;
      lastChecked = focused;
      updateSelection();
    } else if (key === "p") {
      const chosen = selected();
      decide(chosen.length ? chosen : targetsFor(focused), "pass", "", "");
    } else if (key === "b") {
      const chosen = selected();
      openBlock(chosen.length ? chosen : targetsFor(focused));
    } else return;
    event.preventDefault();
  });

  // Tab counts come separately: they are cached on the server and never slow the queue down.
  fetch(root.dataset.countsUrl, { credentials: "same-origin" })
    .then((r) => (r.ok ? r.json() : {}))
    .then((counts) => {
      document.querySelectorAll("[data-count]").forEach((badge) => {
        const value = counts[badge.dataset.count];
        badge.textContent = value === undefined ? "" : value.toLocaleString();
        if ("hideZero" in badge.dataset) {
          badge.hidden = !value;
          if (value) badge.textContent = `${value.toLocaleString()} expire today`;
        }
      });
    })
    .catch(() => {});

  focus(items()[0]);
  updateSelection();
})();
