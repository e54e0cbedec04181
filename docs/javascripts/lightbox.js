// Figures open large with GLightbox (set up by mkdocs-glightbox; see
// tools/lightbox.py), fetched when a reader first opens one: a page that is
// only read never loads it. The dialog is a modal dialog for a screen reader
// too: it gets a name, focus moves to its close button, and back to the
// figure on close.
(() => {
  const config = document.getElementById("glightbox-config");
  if (!config) return; // a page without the plugin
  const { script, css, options } = JSON.parse(config.textContent);
  let started = null; // a promise of the lightbox, once a figure was opened
  let opening = false; // a second click while it loads opens nothing more

  const fetched = (tag) =>
    new Promise((resolve, reject) => {
      tag.onload = resolve;
      tag.onerror = () => reject(new Error(`cannot load ${tag.src || tag.href}`));
      document.head.append(tag);
    });

  async function start() {
    const stylesheet = Object.assign(document.createElement("link"), {
      rel: "stylesheet",
      href: css,
    });
    const code = Object.assign(document.createElement("script"), { src: script });
    await Promise.all([fetched(stylesheet), fetched(code)]);
    const lightbox = GLightbox(options);
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
    return lightbox;
  }

  // Once started, GLightbox handles the clicks on the figures it knows (and
  // cancels them); this opens the first one, or one it does not know yet.
  document.addEventListener("click", (event) => {
    const link = event.target.closest?.("a.glightbox");
    if (!link || event.defaultPrevented || event.button !== 0) return;
    if (event.ctrlKey || event.metaKey || event.shiftKey || event.altKey) return;
    event.preventDefault();
    if (opening) return;
    opening = true;
    started ??= start();
    started
      .then(
        (lightbox) => {
          const links = Array.from(document.querySelectorAll("a.glightbox"));
          if (lightbox.elements.length !== links.length) lightbox.reload();
          lightbox.openAt(links.indexOf(link));
        },
        (error) => {
          started = null; // try again on the next click
          console.error("lightbox:", error);
          window.location.assign(link.href); // the figure on its own, at least
        },
      )
      .finally(() => {
        opening = false;
      });
  });
})();
