/* Recommendation strips scroll sideways; a card reached with the keyboard is scrolled
 * wholly into view (the browser's own scrolling shows only the focused link, often half a
 * card). Linked once per page by the first strip; no dependencies. */
(function () {
  "use strict";
  document.addEventListener("focusin", ev => {
    const strip = ev.target.closest && ev.target.closest(".recommendations .strip");
    if (!strip) return;
    const card = ev.target.closest("[data-product-id]") || ev.target;
    const still = window.matchMedia("(prefers-reduced-motion: reduce)").matches;
    card.scrollIntoView({ block: "nearest", inline: "nearest", behavior: still ? "auto" : "smooth" });
  });
})();
