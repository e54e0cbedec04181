// A figure opened large (GLightbox, set up by mkdocs-glightbox; see
// tools/lightbox.py) is a modal dialog for a screen reader too: it gets a
// name, focus moves to its close button, and back to the figure on close.
(() => {
  if (typeof lightbox === "undefined") return; // a page without the plugin
  let opener = null;
  lightbox.on("open", () => {
    opener = document.activeElement;
    const dialog = document.querySelector(".glightbox-container");
    dialog.setAttribute("aria-modal", "true");
    dialog.setAttribute("aria-label", "Figure, enlarged");
    dialog.querySelector(".gclose")?.focus();
  });
  lightbox.on("close", () => {
    opener?.focus();
    opener = null;
  });
})();
