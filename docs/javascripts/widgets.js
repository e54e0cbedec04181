/* What the book's interactive pages (the convolution explorer, the live CNN)
 * share: each sets itself up once, however often Material's instant
 * navigation re-runs its script, adds its own stylesheet, and says in the
 * page, not only in the console, why it did not start and how to open it so
 * that it does.
 *
 * Loaded on every page (mkdocs.yml, extra_javascript) and without defer, so
 * it runs before the pages' own deferred scripts.
 */
"use strict";

/** Start the widgets a page holds (elements matching selector) with
 * setUp(root), a promise; failure names the status line's class and words. */
window.bookWidget ??= function bookWidget({ name, selector, stylesheet, setUp, failure }) {
  /** The widget's status line (statusClass), made if the page has none,
   * saying what went wrong and how to serve the site. */
  function showFailure(root, error) {
    let status = root.querySelector(`.${failure.statusClass}`);
    if (status === null) {
      status = document.createElement("p");
      status.className = failure.statusClass;
      status.setAttribute("role", "status");
      root.prepend(status);
    }
    const message = String(error?.message || error).replace(/\.$/, "");
    const code = document.createElement("code");
    code.textContent = "make serve";
    status.replaceChildren(
      `${failure.what} could not start (${message}). ` +
        (location.protocol === "file:" ? failure.fromDisk : failure.otherwise),
      "It needs the site served by a web server: from a clone of the repository, run ",
      code,
      " and open the address it prints.",
    );
  }

  function setUpAll() {
    for (const root of document.querySelectorAll(`${selector}:not([data-ready])`)) {
      setUp(root).catch((error) => {
        root.dataset.ready = "failed";
        showFailure(root, error);
        console.error(`${name}:`, error);
      });
    }
  }

  const flag = `__${name.replace(/\W/g, "")}Loaded`;
  if (window[flag]) return; // re-run by instant navigation
  window[flag] = true;
  const link = document.createElement("link");
  link.rel = "stylesheet";
  link.href = stylesheet;
  document.head.append(link);
  if (typeof document$ !== "undefined") {
    document$.subscribe(setUpAll); // Material: on every page, instant or not
  } else if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", setUpAll);
  } else {
    setUpAll();
  }
};
