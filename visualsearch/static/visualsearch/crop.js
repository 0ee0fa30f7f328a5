/* "Search by photo": drag a rectangle over the photo and search with only that part, or
 * pick one of the products the search found in it (each button carries its box).
 *
 * Dragging is not the only way with one finger or a pointer: a tap sets one corner and a
 * second tap the opposite one (a tap never clears the area). Dragging inside the area moves
 * it. The turn buttons send the photo with a quarter turn, for one saved on its side.
 *
 * The photo takes the keyboard focus too: the arrow keys move the area (drawing one in the
 * middle first if there is none), Shift with them resizes it, Enter searches it and Escape
 * clears it; each change is read out from a live region whose wording the template gives.
 *
 * The photo is not stored on the server: the page shows it as a data: URL, and searching
 * again uploads that same preview with the box in its pixels ("x0,y0,x1,y1", right and
 * bottom exclusive). No build step, no dependencies.
 */
(function () {
  "use strict";
  const form = document.getElementById("vs-crop-form");
  if (!form) return;
  const frame = document.getElementById("vs-crop");
  const photo = document.getElementById("vs-photo");
  const selection = document.getElementById("vs-selection");
  const boxInput = document.getElementById("vs-box");
  const fileInput = document.getElementById("vs-crop-image");
  const turnInput = document.getElementById("vs-turn");
  const clearButton = document.getElementById("vs-clear-area");
  const wholeButton = document.getElementById("vs-search-whole");
  const areaButton = document.getElementById("vs-search-area");
  const naturalWidth = Number(frame.dataset.width);
  const naturalHeight = Number(frame.dataset.height);
  const status = document.getElementById("vs-crop-status");
  const MIN_SIDE = 8; // preview pixels: smaller drags are treated as clicks
  const STEP = 0.02; // share of the photo's side that one key press moves or resizes by
  const mark = document.createElement("div"); // the first corner a tap set
  mark.className = "vs-corner";
  mark.hidden = true;
  mark.setAttribute("aria-hidden", "true");
  frame.appendChild(mark);

  let box = parseBox(boxInput.value); // in preview pixels
  let start = null; // where the pointer went down
  let pointer = null; // the one pointer followed (a second finger is ignored)
  let before = null; // the area when the pointer went down: kept if the drag draws none
  let dragged = false; // whether this press moved past a tap
  let moving = null; // the box when the pointer went down inside it: a drag moves it
  let corner = null; // the first corner a tap set, waiting for the second

  function parseBox(text) {
    const v = (text || "").split(",").map(Number);
    return v.length === 4 && v.every(Number.isFinite) ? v : null;
  }
  function scale() {
    const rect = photo.getBoundingClientRect();
    return { rect, sx: naturalWidth / rect.width, sy: naturalHeight / rect.height };
  }
  function toNatural(ev) {
    const { rect, sx, sy } = scale();
    const x = Math.min(Math.max(ev.clientX - rect.left, 0), rect.width);
    const y = Math.min(Math.max(ev.clientY - rect.top, 0), rect.height);
    return [Math.round(x * sx), Math.round(y * sy)];
  }
  function draw() {
    const { sx, sy } = scale();
    mark.hidden = !corner;
    if (corner) {
      mark.style.left = corner[0] / sx + "px";
      mark.style.top = corner[1] / sy + "px";
    }
    if (clearButton) clearButton.hidden = !box;
    if (!box) {
      selection.hidden = true;
      areaButton.disabled = true;
      boxInput.value = "";
      return;
    }
    selection.hidden = false;
    selection.style.left = box[0] / sx + "px";
    selection.style.top = box[1] / sy + "px";
    selection.style.width = (box[2] - box[0]) / sx + "px";
    selection.style.height = (box[3] - box[1]) / sy + "px";
    areaButton.disabled = false;
    boxInput.value = box.join(",");
  }
  function update(a, b) {
    const x0 = Math.min(a[0], b[0]), x1 = Math.max(a[0], b[0]);
    const y0 = Math.min(a[1], b[1]), y1 = Math.max(a[1], b[1]);
    return [x0, y0, Math.min(x1, naturalWidth), Math.min(y1, naturalHeight)];
  }

  function inside(b, p) {
    return b && p[0] >= b[0] && p[0] <= b[2] && p[1] >= b[1] && p[1] <= b[3];
  }
  function isBig(b) {
    return b[2] - b[0] >= MIN_SIDE && b[3] - b[1] >= MIN_SIDE;
  }
  function moved(from, to) {
    return Math.abs(to[0] - from[0]) >= MIN_SIDE || Math.abs(to[1] - from[1]) >= MIN_SIDE;
  }
  function turned(b, degrees) {
    // The area in pixels of the photo turned a quarter turn right (90) or left (270).
    if (degrees === 90) return [naturalHeight - b[3], b[0], naturalHeight - b[1], b[2]];
    return [b[1], naturalWidth - b[2], b[3], naturalWidth - b[0]];
  }
  function shifted(b, dx, dy) {
    const mx = Math.min(Math.max(dx, -b[0]), naturalWidth - b[2]);
    const my = Math.min(Math.max(dy, -b[1]), naturalHeight - b[3]);
    return [b[0] + mx, b[1] + my, b[2] + mx, b[3] + my];
  }

  frame.addEventListener("pointerdown", ev => {
    if (start && ev.pointerId !== pointer) {
      // A second finger: a pinch (the page zooms), not a drawing. What the first finger
      // began is undone, however far it had moved.
      box = before;
      start = pointer = moving = null;
      draw();
      return;
    }
    if (ev.button !== 0 || start) return;
    ev.preventDefault(); // no text selection or image drag; the photo takes the focus below
    frame.focus({ preventScroll: true }); // so that Escape, the arrows and Enter work next
    frame.setPointerCapture(ev.pointerId);
    pointer = ev.pointerId;
    start = toNatural(ev);
    before = box;
    dragged = false;
    moving = !corner && inside(box, start) ? box.slice() : null;
  });
  frame.addEventListener("pointermove", ev => {
    if (!start || ev.pointerId !== pointer) return;
    const point = toNatural(ev);
    dragged = dragged || moved(start, point);
    if (moving) {
      box = shifted(moving, point[0] - start[0], point[1] - start[1]);
    } else if (dragged) {
      corner = null; // a drag draws the area: no tap is half done
      box = update(start, point); // shown as it is drawn, kept only if big enough
    } else {
      return;
    }
    draw();
  });
  frame.addEventListener("pointerup", ev => {
    if (!start || ev.pointerId !== pointer) return;
    const point = toNatural(ev);
    let small = false;
    if (moving) {
      moving = null;
    } else if (!dragged && corner) {
      const candidate = update(corner, point);
      small = !isBig(candidate);
      if (!small) {
        box = candidate;
        corner = null;
      }
    } else if (!dragged) {
      corner = point; // the second tap sets the opposite corner
    } else {
      const candidate = update(start, point);
      small = !isBig(candidate);
      box = small ? before : candidate; // a line or a speck is no area: the last one stays
    }
    start = pointer = null;
    draw();
    announce(small);
  });
  frame.addEventListener("pointercancel", ev => {
    if (ev.pointerId !== pointer) return;
    box = before; // the browser took the gesture (a scroll, a pinch): nothing changes
    start = pointer = moving = null;
    draw();
  });
  frame.addEventListener("focus", () => announce());
  window.addEventListener("resize", draw);

  function announce(small) {
    if (!status) return;
    if (small === true) { status.textContent = status.dataset.small; return; }
    if (corner) { status.textContent = status.dataset.corner; return; }
    if (!box) { status.textContent = status.dataset.none; return; }
    const pct = (v, side) => String(Math.round((100 * v) / side));
    status.textContent = status.dataset.area
      .replace("{width}", pct(box[2] - box[0], naturalWidth))
      .replace("{height}", pct(box[3] - box[1], naturalHeight))
      .replace("{left}", pct(box[0], naturalWidth))
      .replace("{top}", pct(box[1], naturalHeight));
  }
  function middle() {
    const w = Math.round(naturalWidth / 2), h = Math.round(naturalHeight / 2);
    const x = Math.round((naturalWidth - w) / 2), y = Math.round((naturalHeight - h) / 2);
    return [x, y, x + w, y + h];
  }
  const ARROWS = { ArrowLeft: [-1, 0], ArrowRight: [1, 0], ArrowUp: [0, -1], ArrowDown: [0, 1] };
  function nudge(b, dx, dy, resize) {
    const sx = Math.max(1, Math.round(naturalWidth * STEP)) * dx;
    const sy = Math.max(1, Math.round(naturalHeight * STEP)) * dy;
    if (resize) {
      const right = Math.min(Math.max(b[2] + sx, b[0] + MIN_SIDE), naturalWidth);
      const bottom = Math.min(Math.max(b[3] + sy, b[1] + MIN_SIDE), naturalHeight);
      return [b[0], b[1], right, bottom];
    }
    return shifted(b, sx, sy);
  }
  frame.addEventListener("keydown", ev => {
    if (ev.altKey || ev.ctrlKey || ev.metaKey) return;
    if (ev.key === "Escape") {
      if (!box && !corner) return;
      box = null;
      corner = null;
      boxInput.value = "";
    } else if (ev.key === "Enter") {
      if (!box) return;
      ev.preventDefault();
      form.requestSubmit(areaButton);
      return;
    } else if (ARROWS[ev.key]) {
      const [dx, dy] = ARROWS[ev.key];
      box = box ? nudge(box, dx, dy, ev.shiftKey) : middle();
    } else {
      return;
    }
    ev.preventDefault();
    draw();
    announce();
  });

  // The pointer's and the finger's way to clear the area (Escape is the keyboard's).
  if (clearButton) {
    clearButton.addEventListener("click", () => {
      box = null;
      corner = null;
      draw();
      announce();
      frame.focus({ preventScroll: true });
    });
  }

  // Enter in a filter field searches as the page is (the area, or the whole photo), not
  // with the form's first button, which is a product's or a turn's.
  form.addEventListener("keydown", ev => {
    const field = ev.target;
    if (ev.key !== "Enter" || !field.matches || !field.matches("input, select")) return;
    ev.preventDefault();
    form.requestSubmit(box ? areaButton : wholeButton);
  });

  // A product's button outlines its box on the photo while it has the pointer or focus.
  form.querySelectorAll(".vs-region-pick").forEach(button => {
    const outline = document.getElementById(button.dataset.region);
    const on = () => outline && outline.classList.add("vs-region-active");
    const off = () => outline && outline.classList.remove("vs-region-active");
    ["mouseenter", "focus"].forEach(e => button.addEventListener(e, on));
    ["mouseleave", "blur"].forEach(e => button.addEventListener(e, off));
  });

  form.addEventListener("submit", async ev => {
    ev.preventDefault();
    const whole = ev.submitter && ev.submitter.value === "whole";
    const picked = ev.submitter && ev.submitter.dataset.box;
    // A turn sends the photo with the turn asked for, and the area turned with it; the
    // next search sends that turned preview.
    const turning = ev.submitter && ev.submitter.dataset.turn;
    if (turnInput) turnInput.value = turning || "";
    if (turning) boxInput.value = box ? turned(box, Number(turning)).join(",") : "";
    else boxInput.value = picked || (whole || !box ? "" : box.join(","));
    // The products found stay on offer after one is picked (a box's search finds none).
    const kept = document.getElementById("vs-regions-kept");
    if (kept) {
      const boxes = Array.from(form.querySelectorAll(".vs-region-pick"), b => b.dataset.box);
      kept.value = turning || whole ? "" : boxes.join(";");
    }
    // Upload the preview again: a File built from the data: URL, put into the file input.
    const blob = await (await fetch(photo.src)).blob(); // the data: URL shown, sent once
    const transfer = new DataTransfer();
    transfer.items.add(new File([blob], "photo.jpg", { type: blob.type || "image/jpeg" }));
    fileInput.files = transfer.files;
    form.querySelectorAll("button[type=submit]").forEach(b => { b.disabled = true; });
    form.classList.add("vs-busy");
    form.setAttribute("aria-busy", "true");
    if (status) status.textContent = status.dataset.busy;
    HTMLFormElement.prototype.submit.call(form);
  });

  if (photo.complete) draw(); else photo.addEventListener("load", draw);
})();
