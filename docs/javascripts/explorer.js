/* The convolution explorer: slide a 3 × 3 kernel over an image, in the page.
 *
 * Plain JavaScript, no library. The page (docs/explorer.md) holds the input
 * images as <img class="explorer__source">; this script builds the controls
 * around them. It computes exactly what snippets/explorer.py's feature_map
 * computes (the tests compare the two), and exposes the result as
 * element.explorer.output for them.
 *
 * Starting up (once, however often Material's instant navigation re-runs
 * this script), adding its stylesheet (docs/stylesheets/explorer.css) and
 * saying why it could not start are shared with the live CNN page, in
 * docs/javascripts/widgets.js.
 *
 * The page holds a status line (.explorer__status) that says how to open the
 * explorer: it stays if this script never runs, is removed once the explorer
 * is ready, and says what went wrong if setting up fails (a page opened from
 * disk may not read its own images).
 */
(function () {
  "use strict";

  // The same kernels as PRESETS in snippets/explorer.py (a test checks).
  const PRESETS = {
    identity: [[0, 0, 0], [0, 1, 0], [0, 0, 0]],
    "box blur": [[1 / 9, 1 / 9, 1 / 9], [1 / 9, 1 / 9, 1 / 9], [1 / 9, 1 / 9, 1 / 9]],
    sharpen: [[0, -1, 0], [-1, 5, -1], [0, -1, 0]],
    "Sobel x": [[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]],
    "Sobel y": [[-1, -2, -1], [0, 0, 0], [1, 2, 1]],
    Laplacian: [[0, 1, 0], [1, -4, 1], [0, 1, 0]],
  };
  const STRIDES = [1, 2, 3];
  const PADDINGS = [0, 1, 2];
  const DISPLAY = 256; // CSS pixels across for the input image
  // The colour bar's gradients: the same end colours as draw() below.
  const SIGNED_BAR = "linear-gradient(to right, #2166ac, #ffffff, #b2001f)";
  const GREY_BAR = "linear-gradient(to right, #ffffff, #000000)"; // 0 white

  /** Rows of pixel values in [0, 1] from a greyscale <img>. */
  async function readPixels(img) {
    img.loading = "eager"; // the page lazy-loads images; these are inputs
    await img.decode();
    const bitmap = await createImageBitmap(img, { colorSpaceConversion: "none" });
    const canvas = document.createElement("canvas");
    canvas.width = bitmap.width;
    canvas.height = bitmap.height;
    const context = canvas.getContext("2d", { willReadFrequently: true });
    context.drawImage(bitmap, 0, 0);
    const rgba = context.getImageData(0, 0, bitmap.width, bitmap.height).data;
    const rows = [];
    for (let i = 0; i < bitmap.height; i++) {
      const row = new Float64Array(bitmap.width);
      for (let j = 0; j < bitmap.width; j++) {
        row[j] = rgba[4 * (i * bitmap.width + j)] / 255;
      }
      rows.push(row);
    }
    return rows;
  }

  function outputSize(size, kernelSize, stride, padding) {
    return Math.floor((size + 2 * padding - kernelSize) / stride) + 1;
  }

  /** Y[i][j] = b + sum over u, v of K[u][v] X[i s + u - p][j s + v - p]. */
  function featureMap(X, K, stride, padding, bias = 0) {
    const k = K.length;
    const height = outputSize(X.length, k, stride, padding);
    const width = outputSize(X[0].length, k, stride, padding);
    const Y = [];
    for (let i = 0; i < height; i++) {
      const row = new Float64Array(Math.max(width, 0));
      for (let j = 0; j < width; j++) {
        let sum = bias;
        for (let u = 0; u < k; u++) {
          const r = i * stride + u - padding;
          if (r < 0 || r >= X.length) continue; // zero padding
          for (let v = 0; v < k; v++) {
            const c = j * stride + v - padding;
            if (c >= 0 && c < X[r].length) sum += K[u][v] * X[r][c];
          }
        }
        row[j] = sum;
      }
      Y.push(row);
    }
    return Y;
  }

  /** The book's colours (chapter 1; snippets/why_cnns_ops.py draws the
   * same): a map with negative values red positive, white 0, blue negative,
   * on a range symmetric about 0; a map without them white at 0 and black at
   * its largest value (or at range). photo: draw a photo as it is instead,
   * black 0 to white at range. */
  function draw(canvas, Y, scale, { range = null, photo = false } = {}) {
    const height = Y.length;
    const width = height ? Y[0].length : 0;
    canvas.width = Math.max(width, 1);
    canvas.height = Math.max(height, 1);
    canvas.style.width = `${Math.max(width, 1) * scale}px`;
    const context = canvas.getContext("2d");
    const image = context.createImageData(canvas.width, canvas.height);
    let low = Infinity;
    let high = 0;
    for (const row of Y) {
      for (const value of row) {
        low = Math.min(low, value);
        high = Math.max(high, Math.abs(value));
      }
    }
    if (range !== null) high = range;
    const diverging = low < 0;
    for (let i = 0; i < height; i++) {
      for (let j = 0; j < width; j++) {
        const t = high > 0 ? Y[i][j] / high : 0; // in [-1, 1]
        let rgb;
        if (photo) {
          rgb = [255 * t, 255 * t, 255 * t];
        } else if (!diverging) {
          rgb = [255 * (1 - t), 255 * (1 - t), 255 * (1 - t)]; // 0 white
        } else if (t >= 0) {
          rgb = [255 - 77 * t, 255 - 255 * t, 255 - 223 * t]; // to red #b2001f
        } else {
          rgb = [255 + 222 * t, 255 + 153 * t, 255 + 83 * t]; // to blue #2166ac
        }
        image.data.set([...rgb.map(Math.round), 255], 4 * (i * width + j));
      }
    }
    context.putImageData(image, 0, 0);
    return { diverging, high };
  }

  function element(tag, attributes = {}, children = []) {
    const el = document.createElement(tag);
    for (const [name, value] of Object.entries(attributes)) {
      if (name === "text") el.textContent = value;
      else el.setAttribute(name, value);
    }
    el.append(...children);
    return el;
  }

  /** A colour bar: the gradient, and its low, middle and high values. */
  function colourBar() {
    const bar = element("div", { "aria-hidden": "true" });
    bar.style.cssText = "height: 0.8em; border: 1px solid #888; margin-top: 0.3em";
    const labels = [element("span"), element("span"), element("span")];
    const row = element("div", { "aria-hidden": "true" }, labels);
    row.style.cssText =
      "display: flex; justify-content: space-between; font-size: 0.8em";
    const root = element("div", { class: "explorer__colourbar" }, [bar, row]);
    root.style.width = "100%";
    return {
      root,
      show(diverging, high) {
        // A map that is 0 everywhere has no range to show: the page says so.
        root.style.visibility = high > 0 ? "visible" : "hidden";
        bar.style.background = diverging ? SIGNED_BAR : GREY_BAR;
        const values = diverging ? [-high, 0, high] : [0, high / 2, high];
        labels.forEach((label, n) => {
          label.textContent = (values[n] < 0 ? "−" : "") + format(Math.abs(values[n]));
        });
      },
    };
  }

  function format(value) {
    return Number.isInteger(value) ? String(value) : String(+value.toFixed(3));
  }

  /** A number field's value: an empty field counts as 0; text that is not
   * (yet) a finite number, such as "-" or "1e" (badInput), gives null. */
  function fieldValue(text, badInput = false) {
    if (badInput) return null;
    if (text.trim() === "") return 0;
    const value = Number(text);
    return Number.isFinite(value) ? value : null;
  }

  function select(id, label, values, describe) {
    const menu = element(
      "select",
      { id },
      values.map((value) => element("option", { value, text: describe(value) })),
    );
    return [element("label", { for: id, text: label }), menu];
  }

  async function setUp(root) {
    root.dataset.ready = "loading";
    const sources = Array.from(root.querySelectorAll("img.explorer__source"));
    const images = {};
    const inked = new Set(); // drawn as dark ink on white, like chapter 1's digits
    for (const img of sources) {
      images[img.dataset.name] = await readPixels(img);
      if (img.dataset.kind === "ink") inked.add(img.dataset.name);
    }
    const uid = `explorer-${document.querySelectorAll("[data-ready]").length}`;

    const imageMenu = select(`${uid}-image`, "Image", Object.keys(images), (n) => n);
    const presetMenu = select(
      `${uid}-preset`,
      "Kernel",
      [...Object.keys(PRESETS), "custom"],
      (n) => n,
    );
    const strideMenu = select(`${uid}-stride`, "Stride", STRIDES, String);
    const paddingMenu = select(`${uid}-padding`, "Padding", PADDINGS, String);
    const weights = [];
    const grid = element("div", {
      class: "explorer__weights",
      role: "group",
      "aria-labelledby": `${uid}-weights`,
    });
    for (let u = 0; u < 3; u++) {
      for (let v = 0; v < 3; v++) {
        const input = element("input", {
          type: "number",
          step: "any",
          inputmode: "decimal",
          "aria-label": `Weight, row ${u + 1}, column ${v + 1}`,
        });
        weights.push(input);
        grid.append(input);
      }
    }
    const biasInput = element("input", {
      id: `${uid}-bias`,
      type: "number",
      step: "any",
      inputmode: "decimal",
      value: "0",
    });
    biasInput.style.width = "5em";
    // Says which field holds no number yet; the map keeps that field's last
    // number until it does.
    const problem = element("p", { class: "explorer__problem", "aria-live": "polite" });
    const inputCanvas = element("canvas", { role: "img" });
    const outputCanvas = element("canvas", { role: "img" });
    const inputCaption = element("figcaption");
    const outputCaption = element("figcaption");
    const outputBar = colourBar();
    const summary = element("p", { class: "explorer__size", "aria-live": "polite" });
    const controls = element("div", { class: "explorer__controls" }, [
      element("div", { class: "explorer__field" }, imageMenu),
      element("div", { class: "explorer__field" }, presetMenu),
      element("div", { class: "explorer__field" }, strideMenu),
      element("div", { class: "explorer__field" }, paddingMenu),
      element("div", { class: "explorer__field" }, [
        element("span", { id: `${uid}-weights`, text: "Weights (3 × 3)" }),
        grid,
      ]),
      element("div", { class: "explorer__field" }, [
        element("label", { for: `${uid}-bias`, text: "Bias" }),
        biasInput,
      ]),
      problem,
    ]);
    const views = element("div", { class: "explorer__views" }, [
      element("figure", {}, [inputCanvas, inputCaption]),
      element("figure", {}, [outputCanvas, outputBar.root, outputCaption]),
    ]);
    root.append(controls, views, summary);

    const state = {
      image: Object.keys(images)[0],
      kernel: PRESETS.identity.map((row) => row.slice()),
      stride: 1,
      padding: 0,
      bias: 0,
    };
    const api = { presets: PRESETS, state, output: null, featureMap, outputSize };
    root.explorer = api;

    function showKernel() {
      weights.forEach((input, n) => {
        input.value = format(state.kernel[Math.floor(n / 3)][n % 3]);
        input.setAttribute("aria-invalid", "false");
      });
      showProblems();
    }

    function update() {
      const X = images[state.image];
      const scale = Math.max(1, Math.floor(DISPLAY / X[0].length));
      draw(inputCanvas, X, scale, { range: 1, photo: !inked.has(state.image) });
      const [height, width] = [X.length, X[0].length];
      const outH = outputSize(height, 3, state.stride, state.padding);
      const outW = outputSize(width, 3, state.stride, state.padding);
      const Y = featureMap(X, state.kernel, state.stride, state.padding, state.bias);
      const { diverging, high } = draw(outputCanvas, Y, scale);
      outputBar.show(diverging, high);
      outputBar.root.style.width = outputCanvas.style.width;
      api.output = { height: outH, width: outW, values: Y.map((r) => Array.from(r)) };
      inputCaption.textContent = `Input: ${height} × ${width} pixels`;
      inputCanvas.setAttribute("aria-label", `The ${state.image}, ${height} by ${width} pixels`);
      outputCaption.textContent = `Feature map: ${outH} × ${outW}`;
      outputCanvas.setAttribute(
        "aria-label",
        `Feature map of the ${state.image}, ${outH} by ${outW} values`,
      );
      let colours = diverging
        ? `red up to +${format(high)}, white 0, blue down to −${format(high)}`
        : `white 0, black ${format(high)}`;
      if (high === 0) {
        colours = "none: the map is 0 everywhere, drawn white";
        outputCaption.textContent += ", 0 everywhere";
      }
      summary.textContent =
        `Output size: ⌊(${height} + 2 × ${state.padding} − 3) / ${state.stride}⌋ + 1` +
        ` = ${outH} rows, and ${outW} columns. Colours: ${colours}.`;
    }

    imageMenu[1].addEventListener("change", (event) => {
      state.image = event.target.value;
      update();
    });
    presetMenu[1].addEventListener("change", (event) => {
      if (event.target.value === "custom") return;
      state.kernel = PRESETS[event.target.value].map((row) => row.slice());
      showKernel();
      update();
    });
    strideMenu[1].addEventListener("change", (event) => {
      state.stride = Number(event.target.value);
      update();
    });
    paddingMenu[1].addEventListener("change", (event) => {
      state.padding = Number(event.target.value);
      update();
    });
    /** Read a number field into the state (empty: 0), or mark it invalid
     * and say, next to the fields, that the map keeps its last number. */
    const fields = [
      ...weights.map((input, n) => ({
        input,
        name: `Weight, row ${Math.floor(n / 3) + 1}, column ${(n % 3) + 1}`,
        get: () => state.kernel[Math.floor(n / 3)][n % 3],
        set: (value) => {
          state.kernel[Math.floor(n / 3)][n % 3] = value;
          presetMenu[1].value = "custom";
        },
      })),
      {
        input: biasInput,
        name: "Bias",
        get: () => state.bias,
        set: (value) => {
          state.bias = value;
        },
      },
    ];
    function showProblems() {
      const bad = fields.filter((f) => f.input.getAttribute("aria-invalid") === "true");
      problem.textContent = bad
        .map((f) => `${f.name} is not a number: the map uses its last value, ${format(f.get())}.`)
        .join(" ");
    }
    for (const field of fields) {
      field.input.addEventListener("input", () => {
        const value = fieldValue(field.input.value, field.input.validity.badInput);
        field.input.setAttribute("aria-invalid", String(value === null));
        if (value !== null) {
          field.set(value);
          update();
        }
        showProblems();
      });
      field.input.addEventListener("change", () => {
        // An emptied field is 0: say so in the field once it is left.
        if (field.input.value.trim() === "" && !field.input.validity.badInput) {
          field.input.value = "0";
        }
      });
    }
    showKernel();
    update();
    root.querySelector(".explorer__status")?.remove();
    root.dataset.ready = "true";
  }

  // Set up once, add the stylesheet (next to this script's folder: loaded only
  // where it is used), and say on the page why the explorer did not start.
  window.bookWidget({
    name: "convolution explorer",
    selector: ".explorer",
    stylesheet: new URL("../stylesheets/explorer.css", document.currentScript.src).href,
    setUp,
    failure: {
      statusClass: "explorer__status",
      what: "The explorer",
      fromDisk: "Opened as a file from disk, the page may not read its own images. ",
      otherwise: "An image may have failed to load: try reloading the page. ",
    },
  });
})();
