/* Chapter 4's CNN, live: draw or pick a digit, move it, and watch the
 * network's feature maps and probabilities, computed in the page.
 *
 * Plain JavaScript, no library. The page (docs/live-cnn.md) holds a
 * .live-cnn element whose data-files attribute points at the files that
 * snippets/live_cnn.py writes: one per network (trained or untrained, seed 0
 * or 1) and one of test digits, each a safetensors file (an 8-byte header
 * length, a JSON header, little-endian float32 data). The forward pass does
 * what SmallCNN (snippets/book.py) does in eval mode; the browser tests check
 * that every block's maps and the probabilities equal PyTorch's.
 *
 * A status line (.live-cnn__status) says how to open the page if this
 * script never runs. Starting up once, adding the stylesheet
 * (docs/stylesheets/live-cnn.css) and saying what went wrong if setting up
 * fails are shared with the explorer, in docs/javascripts/widgets.js.
 */
(function () {
  "use strict";

  const SIZE = 24; // the canvas the network sees, in pixels
  const ZOOM = 12; // CSS pixels per input pixel
  const MAP_PIXELS = 48; // CSS pixels across one feature map
  const GAP = 4; // CSS pixels between two maps
  const COLUMNS = 8; // maps per row
  const CELL = 24; // CSS pixels across one global-max value
  const MAX_MOVE = 20; // the farthest a digit moves, in pixels
  const BRUSH = 1.0; // radius of full ink, in pixels; the edge fades over 1
  const ERASER = 1.5;
  const GREY_BAR = "linear-gradient(to right, #ffffff, #000000)"; // 0 white
  const STANDS_OUT = 0.2; // below this probability, no class stands out
  const INK = 0.5; // the training canvases' noise (sigma 0.1) stays below
  // Arrow keys as (rows, columns) steps.
  const STEPS = { ArrowLeft: [0, -1], ArrowRight: [0, 1], ArrowUp: [-1, 0], ArrowDown: [1, 0] };

  // --- Reading the files ---------------------------------------------------

  /** Named float32 tensors and string metadata from a safetensors file. */
  function readTensors(buffer, source) {
    if (buffer.byteLength < 8) throw new Error(`${source} is empty or cut off`);
    const view = new DataView(buffer);
    const length = Number(view.getBigUint64(0, true));
    if (8 + length > buffer.byteLength) {
      throw new Error(`${source} is not a tensor file: its header is cut off`);
    }
    const header = JSON.parse(new TextDecoder().decode(new Uint8Array(buffer, 8, length)));
    const metadata = header.__metadata__ || {};
    delete header.__metadata__;
    const tensors = {};
    for (const [name, entry] of Object.entries(header)) {
      if (entry.dtype !== "F32") {
        throw new Error(`${source}: tensor ${name} is ${entry.dtype}, not F32`);
      }
      const [begin, end] = entry.data_offsets;
      const data = new Float32Array((end - begin) / 4);
      for (let i = 0; i < data.length; i++) {
        data[i] = view.getFloat32(8 + length + begin + 4 * i, true); // little-endian
      }
      tensors[name] = { shape: entry.shape, data };
    }
    return { tensors, metadata };
  }

  async function fetchTensors(url) {
    const response = await fetch(url);
    if (!response.ok) throw new Error(`${url} answered HTTP ${response.status}`);
    return readTensors(await response.arrayBuffer(), url.split("/").pop());
  }

  /** The network a file describes: per block, its pool, its convolution and
   * its batch normalisation folded into one scale and shift per channel. */
  function buildNetwork({ tensors, metadata }, name) {
    const get = (key) => {
      if (!(key in tensors)) throw new Error(`${name} has no tensor ${key}`);
      return tensors[key];
    };
    const blocks = JSON.parse(metadata.layout).map((layout) => {
      const weight = get(`${layout.conv}.weight`);
      const [cOut, cIn] = weight.shape;
      const gamma = get(`${layout.norm}.weight`).data;
      const beta = get(`${layout.norm}.bias`).data;
      const mean = get(`${layout.norm}.running_mean`).data;
      const variance = get(`${layout.norm}.running_var`).data;
      const scale = new Float64Array(cOut);
      const shift = new Float64Array(cOut);
      for (let o = 0; o < cOut; o++) {
        // Eval mode: (z - mean) / sqrt(var + eps) * gamma + beta.
        scale[o] = gamma[o] / Math.sqrt(variance[o] + layout.eps);
        shift[o] = beta[o] - mean[o] * scale[o];
      }
      return {
        pool: layout.pool,
        cIn,
        cOut,
        weight: weight.data,
        bias: get(`${layout.conv}.bias`).data,
        scale,
        shift,
      };
    });
    const classifier = get("classifier.weight");
    return {
      name,
      blocks,
      fields: JSON.parse(metadata.fields),
      weight: classifier.data,
      bias: get("classifier.bias").data,
      numClasses: classifier.shape[0],
      accuracy: Number(metadata.test_accuracy),
      numTest: Number(metadata.num_test),
      seed: metadata.seed,
      trained: metadata.trained === "True",
    };
  }

  // --- The forward pass ----------------------------------------------------

  /** 3 × 3 convolution with zero padding 1, batch norm (eval), ReLU: every
   * output sums the same terms in the same order, wherever it is. */
  function convBlock(input, n, block) {
    const { cIn, cOut, weight, bias, scale, shift } = block;
    const out = new Float32Array(cOut * n * n);
    const sum = new Float64Array(n * n);
    for (let o = 0; o < cOut; o++) {
      sum.fill(bias[o]);
      for (let c = 0; c < cIn; c++) {
        const plane = c * n * n;
        for (let u = 0; u < 3; u++) {
          for (let v = 0; v < 3; v++) {
            const w = weight[((o * cIn + c) * 3 + u) * 3 + v];
            // Output (y, x) reads input (y + u - 1, x + v - 1), if inside.
            const yEnd = Math.min(n, n + 1 - u);
            const xStart = Math.max(0, 1 - v);
            const xEnd = Math.min(n, n + 1 - v);
            for (let y = Math.max(0, 1 - u); y < yEnd; y++) {
              const from = plane + (y + u - 1) * n + v - 1;
              const to = y * n;
              for (let x = xStart; x < xEnd; x++) sum[to + x] += w * input[from + x];
            }
          }
        }
      }
      const base = o * n * n;
      for (let i = 0; i < n * n; i++) {
        const z = sum[i] * scale[o] + shift[o];
        out[base + i] = z > 0 ? z : 0;
      }
    }
    return out;
  }

  /** 2 × 2 max pool, stride 2, of C maps of n × n. */
  function maxPool(input, channels, n) {
    const m = n / 2;
    const out = new Float32Array(channels * m * m);
    for (let c = 0; c < channels; c++) {
      for (let y = 0; y < m; y++) {
        for (let x = 0; x < m; x++) {
          const i = c * n * n + 2 * y * n + 2 * x;
          out[(c * m + y) * m + x] = Math.max(
            input[i],
            input[i + 1],
            input[i + n],
            input[i + n + 1],
          );
        }
      }
    }
    return out;
  }

  /** Everything the page shows for one SIZE × SIZE image (row by row). */
  function forward(network, image) {
    let X = image;
    let n = SIZE;
    let channels = 1;
    const maps = [];
    const sizes = [];
    for (const block of network.blocks) {
      if (block.pool) {
        X = maxPool(X, channels, n);
        n /= 2;
      }
      X = convBlock(X, n, block);
      channels = block.cOut;
      maps.push(X);
      sizes.push(n);
    }
    const globalMax = new Float32Array(channels);
    for (let c = 0; c < channels; c++) {
      let top = -Infinity;
      for (let i = c * n * n; i < (c + 1) * n * n; i++) top = Math.max(top, X[i]);
      globalMax[c] = top;
    }
    const logits = new Float32Array(network.numClasses);
    for (let k = 0; k < logits.length; k++) {
      let z = network.bias[k];
      for (let c = 0; c < channels; c++) z += network.weight[k * channels + c] * globalMax[c];
      logits[k] = z;
    }
    const top = Math.max(...logits); // subtracted first: exp cannot overflow
    const exps = Array.from(logits, (z) => Math.exp(z - top));
    const total = exps.reduce((a, b) => a + b, 0);
    const probabilities = Float32Array.from(exps, (e) => e / total);
    return { maps, sizes, globalMax, logits, probabilities };
  }

  /** The image moved dy rows down and dx columns right: what leaves the
   * canvas is not shown, zeros come in (chapter 6's shift). */
  function shifted(image, dy, dx) {
    const out = new Float32Array(SIZE * SIZE);
    for (let y = Math.max(0, dy); y < Math.min(SIZE, SIZE + dy); y++) {
      for (let x = Math.max(0, dx); x < Math.min(SIZE, SIZE + dx); x++) {
        out[y * SIZE + x] = image[(y - dy) * SIZE + x - dx];
      }
    }
    return out;
  }

  /** |after - before| / |before|, as chapter 6's relative_change. */
  function relativeChange(before, after) {
    let difference = 0;
    let length = 0;
    for (let i = 0; i < before.length; i++) {
      difference += (after[i] - before[i]) ** 2;
      length += before[i] ** 2;
    }
    return length > 0 ? Math.sqrt(difference / length) : 0;
  }

  // --- Drawing ---------------------------------------------------------------

  /** Ink of a round brush of radius r along the segment from a to b, in
   * pixel units: full within r of the segment, fading to none at r + 1. */
  function stroke(image, a, b, radius, erase) {
    const [ax, ay] = a;
    const [bx, by] = b;
    const dx = bx - ax;
    const dy = by - ay;
    const length2 = dx * dx + dy * dy;
    const reach = radius + 1;
    const y0 = Math.max(0, Math.floor(Math.min(ay, by) - reach));
    const y1 = Math.min(SIZE - 1, Math.ceil(Math.max(ay, by) + reach));
    const x0 = Math.max(0, Math.floor(Math.min(ax, bx) - reach));
    const x1 = Math.min(SIZE - 1, Math.ceil(Math.max(ax, bx) + reach));
    for (let y = y0; y <= y1; y++) {
      for (let x = x0; x <= x1; x++) {
        const px = x + 0.5;
        const py = y + 0.5;
        // The segment's point nearest the pixel's centre: a + t (b - a).
        const along = length2 > 0 ? ((px - ax) * dx + (py - ay) * dy) / length2 : 0;
        const t = Math.min(1, Math.max(0, along));
        const distance = Math.hypot(px - ax - t * dx, py - ay - t * dy);
        const ink = Math.min(1, Math.max(0, radius + 1 - distance));
        const i = y * SIZE + x;
        image[i] = erase ? Math.min(image[i], 1 - ink) : Math.max(image[i], ink);
      }
    }
  }

  /** A 7 drawn with the page's brush, to start with: a bar, then a stroke
   * down to the left (points are (column, row) in pixels), 11 pixels high,
   * as large as the test digits (8 to 14). */
  function sampleSeven() {
    const image = new Float32Array(SIZE * SIZE);
    stroke(image, [8.5, 7.5], [15.5, 7.5], BRUSH, false);
    stroke(image, [15.5, 7.5], [11.5, 15.5], BRUSH, false);
    return image;
  }

  // One 32-bit word per RGBA pixel: opaque grey g, in the platform's order.
  const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;
  const GREYS = Uint32Array.from({ length: 256 }, (_, g) =>
    LITTLE_ENDIAN ? 0xff000000 + g * 0x010101 : g * 0x01010100 + 0xff,
  );

  /** An n × n map into 32-bit RGBA pixels at (x0, y0), each value a
   * scale × scale square: white 0, black at high (the book's colours for a
   * map without negative values). */
  function paint(pixels, width, x0, y0, values, n, scale, high) {
    for (let y = 0; y < n; y++) {
      for (let x = 0; x < n; x++) {
        const t = high > 0 ? Math.min(1, values[y * n + x] / high) : 0;
        const colour = GREYS[Math.round(255 * (1 - t))];
        const start = (y0 + y * scale) * width + x0 + x * scale;
        for (let dy = 0; dy < scale; dy++) {
          pixels.fill(colour, start + dy * width, start + dy * width + scale);
        }
      }
    }
  }

  /** A canvas's pixels, kept between redraws: the gaps between maps are
   * never painted and stay transparent. */
  function surface(canvas) {
    const context = canvas.getContext("2d");
    const picture = context.createImageData(canvas.width, canvas.height);
    return {
      pixels: new Uint32Array(picture.data.buffer),
      show: () => context.putImageData(picture, 0, 0),
    };
  }

  function largest(values) {
    let high = 0;
    for (const value of values) high = Math.max(high, value);
    return high;
  }

  function format(value) {
    if (value === 0) return "0";
    return Math.abs(value) >= 100 ? value.toFixed(0) : String(+value.toPrecision(3));
  }

  function percent(value) {
    return `${(100 * value).toFixed(1)}%`;
  }

  /** "a 7", "an 8": the digit with its article, as read aloud. */
  function aDigit(n) {
    return `${n === 8 ? "an" : "a"} ${n}`;
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

  /** A colour bar: white 0 to black high, with 0, high / 2 and high. */
  function colourBar() {
    const bar = element("div", { class: "live-cnn__bar", "aria-hidden": "true" });
    bar.style.background = GREY_BAR;
    const labels = [element("span"), element("span"), element("span")];
    const row = element("div", { class: "live-cnn__bar-labels", "aria-hidden": "true" }, labels);
    const root = element("div", { class: "live-cnn__colourbar" }, [bar, row]);
    return {
      root,
      show(high) {
        root.style.visibility = high > 0 ? "visible" : "hidden";
        [0, high / 2, high].forEach((value, n) => {
          labels[n].textContent = format(value);
        });
      },
    };
  }

  function select(id, label, options) {
    const menu = element(
      "select",
      { id },
      options.map(([value, text]) => element("option", { value, text })),
    );
    return { label: element("label", { for: id, text: label }), menu };
  }

  function toBase64(array) {
    const bytes = new Uint8Array(array.buffer, array.byteOffset, array.byteLength);
    let text = "";
    for (let i = 0; i < bytes.length; i += 0x8000) {
      text += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
    }
    return btoa(text);
  }

  function fromBase64(text) {
    const bytes = Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
    return new Float32Array(bytes.buffer);
  }

  // --- The page --------------------------------------------------------------

  async function setUp(root) {
    root.dataset.ready = "loading";
    const files = new URL(root.dataset.files, location.href);
    const cache = {};
    function network(kind, seed) {
      const name = `${kind}-seed${seed}`;
      cache[name] ??= fetchTensors(new URL(`${name}.safetensors`, files).href).then(
        (file) => buildNetwork(file, name),
      );
      return cache[name];
    }
    const firstNetwork = await network("trained", 0);
    // The test digits are fetched when the reader first asks for one.
    let digits = null;
    function testDigits() {
      digits ??= fetchTensors(new URL("digits.safetensors", files).href).then((file) => {
        const { data } = file.tensors.images;
        return JSON.parse(file.metadata.labels).map((label, n) => ({
          label,
          image: data.slice(n * SIZE * SIZE, (n + 1) * SIZE * SIZE),
        }));
      });
      return digits;
    }
    const uid = `live-cnn-${document.querySelectorAll(".live-cnn[data-ready]").length}`;

    // Controls.
    const modes = element("fieldset", { class: "live-cnn__modes" }, [
      element("legend", { text: "Mode" }),
    ]);
    const modeInputs = {};
    for (const [value, text] of [
      ["draw", "Draw"],
      ["erase", "Erase"],
      ["move", "Move"],
    ]) {
      const input = element("input", {
        type: "radio",
        name: `${uid}-mode`,
        value,
        id: `${uid}-${value}`,
      });
      modeInputs[value] = input;
      modes.append(
        element("label", { for: input.id, class: "live-cnn__mode" }, [input, ` ${text}`]),
      );
    }
    const clear = element("button", {
      type: "button",
      class: "live-cnn__button",
      text: "Clear the canvas",
    });
    const digitMenu = select(`${uid}-digit`, "Test digit", [
      ["", "your drawing"],
      // The snippet exports the first test digit of each class, in order.
      ...Array.from({ length: firstNetwork.numClasses }, (_, n) => [String(n), aDigit(n)]),
    ]);
    const kindMenu = select(`${uid}-kind`, "Network", [
      ["trained", "trained (chapter 4)"],
      ["untrained", "untrained (before training)"],
    ]);
    const seedMenu = select(`${uid}-seed`, "Seed", [
      ["0", "0"],
      ["1", "1"],
    ]);
    const field = (parts) => element("div", { class: "live-cnn__field" }, parts);
    const controls = element("div", { class: "live-cnn__controls" }, [
      modes,
      field([digitMenu.label, digitMenu.menu]),
      field([kindMenu.label, kindMenu.menu]),
      field([seedMenu.label, seedMenu.menu]),
      clear,
    ]);

    // The input canvas, with its overlays: the brush cursor, the field.
    const help = element("p", {
      id: `${uid}-help`,
      class: "live-cnn__help",
      text:
        "Draw and Erase: drag, or move the cursor with the arrow keys and press " +
        "Space to ink a pixel (Shift with an arrow inks as it moves). Move: drag, " +
        "or press an arrow key to move the digit 1 pixel (with Shift, 4).",
    });
    const input = element("canvas", {
      class: "live-cnn__input",
      width: SIZE,
      height: SIZE,
      tabindex: "0",
      role: "application",
      "aria-roledescription": "drawing canvas",
      "aria-label": `The ${SIZE} × ${SIZE} canvas the network sees`,
      "aria-describedby": help.id,
    });
    const cursor = element("div", { class: "live-cnn__cursor", hidden: "" });
    const inputField = element("div", { class: "live-cnn__field-box", hidden: "" });
    const inputFrame = element("div", { class: "live-cnn__frame" }, [input, cursor, inputField]);
    const inputCaption = element("figcaption", {
      text: `Input: ${SIZE} × ${SIZE} pixels, ink dark on white: white 0, black 1`,
    });

    // The prediction: a headline and one bar per class.
    const headline = element("p", { class: "live-cnn__headline" });
    const bars = [];
    const barList = element("ul", {
      class: "live-cnn__probabilities",
      "aria-label": "Probability of each class",
    });
    for (let k = 0; k < firstNetwork.numClasses; k++) {
      const fill = element("span", { class: "live-cnn__fill" });
      const value = element("span", { class: "live-cnn__value" });
      const item = element("li", {}, [
        element("span", { class: "live-cnn__class", text: String(k) }),
        element("span", { class: "live-cnn__track", "aria-hidden": "true" }, [fill]),
        value,
      ]);
      bars.push({ item, fill, value });
      barList.append(item);
    }
    const about = element("p", { class: "live-cnn__about" });
    const status = element("p", { class: "live-cnn__moved", role: "status" });
    const prediction = element("div", { class: "live-cnn__prediction" }, [
      headline,
      barList,
      about,
      status,
    ]);
    const top = element("div", { class: "live-cnn__top" }, [
      element("figure", { class: "live-cnn__canvas" }, [inputFrame, inputCaption]),
      prediction,
    ]);

    // One figure per block: all its maps in one canvas, 8 to a row.
    const blockViews = firstNetwork.blocks.map((block, b) => {
      const n = SIZE / 2 ** b;
      const scale = MAP_PIXELS / n;
      const rows = Math.ceil(block.cOut / COLUMNS);
      const canvas = element("canvas", {
        class: "live-cnn__maps",
        width: COLUMNS * (MAP_PIXELS + GAP) - GAP,
        height: rows * (MAP_PIXELS + GAP) - GAP,
        tabindex: "0",
        role: "application",
        "aria-roledescription": "feature maps",
        "aria-label":
          `Block ${b + 1}: ${block.cOut} maps of ${n} × ${n}. Arrow keys choose a ` +
          "unit; its receptive field is outlined on the input.",
      });
      const outline = element("div", { class: "live-cnn__unit-box", hidden: "" });
      const bar = colourBar();
      const caption = element("figcaption");
      // A small copy of the input beside the unit's line: the field shows
      // next to the block pointed at, where the input itself is off screen.
      const mini = element("canvas", {
        class: "live-cnn__mini",
        width: SIZE,
        height: SIZE,
        role: "img",
        "aria-label": "The input, small, with the chosen unit's receptive field",
      });
      const miniField = element("div", { class: "live-cnn__field-box", hidden: "" });
      const unitLine = element("p", { class: "live-cnn__unit", "aria-live": "polite" });
      const readout = element("div", { class: "live-cnn__readout" }, [
        element("div", { class: "live-cnn__frame live-cnn__mini-frame" }, [mini, miniField]),
        unitLine,
      ]);
      const view = {
        block: b,
        n,
        scale,
        channels: block.cOut,
        canvas,
        outline,
        bar,
        caption,
        mini,
        miniField,
        unitLine,
        figure: element("figure", { class: "live-cnn__block" }, [
          element("div", { class: "live-cnn__frame" }, [canvas, outline]),
          bar.root,
          caption,
          readout,
        ]),
      };
      return view;
    });
    const last = blockViews[blockViews.length - 1];
    const poolRows = Math.ceil(last.channels / COLUMNS);
    const poolCanvas = element("canvas", {
      class: "live-cnn__maps live-cnn__pooled-values",
      width: COLUMNS * (CELL + GAP) - GAP,
      height: poolRows * (CELL + GAP) - GAP,
      role: "img",
      "aria-label": `The ${last.channels} global-max values, 8 to a row`,
    });
    const poolBar = colourBar();
    const poolFigure = element("figure", { class: "live-cnn__block live-cnn__pooled" }, [
      poolCanvas,
      poolBar.root,
      element("figcaption", {
        text:
          `Global max pool: the largest value of each of block 3's ${last.channels} ` +
          "maps, in the same places. The classifier reads these numbers only.",
      }),
    ]);
    const maps = element("div", { class: "live-cnn__blocks" }, [
      ...blockViews.map((view) => view.figure),
      poolFigure,
    ]);
    root.append(controls, help, top, maps);
    // Where the panel sticks, a block brought into view (by Tab, say) stops
    // below it: the stylesheet's scroll margin reads its height from here.
    new ResizeObserver(() => {
      root.style.setProperty("--live-cnn-panel", `${top.offsetHeight}px`);
    }).observe(top);

    // State.
    const state = {
      mode: "draw",
      digit: null, // which test digit, if one was picked
      source: sampleSeven(), // the digit as drawn or picked
      dy: 0, // how far it has been moved
      dx: 0,
      cursor: [SIZE / 2, SIZE / 2], // the keyboard brush: row, column
      unit: null, // the chosen unit: {block, channel, row, col}
    };
    let net = firstNetwork;
    let unmoved = null; // the global max of the digit where it was put
    const api = {
      state,
      output: null,
      field: null, // the outlined receptive field, if any
      encode: toBase64,
      async run(kind, seed, imageBase64) {
        const chosen = await network(kind, seed);
        const out = forward(chosen, fromBase64(imageBase64));
        return {
          maps: out.maps.map(toBase64),
          sizes: out.sizes,
          globalMax: toBase64(out.globalMax),
          logits: toBase64(out.logits),
          probabilities: toBase64(out.probabilities),
        };
      },
      /** Milliseconds per forward pass alone (runs times in a row), and
       * per forward pass and redraw (the whole update), once a frame for
       * runs frames, as while the reader drags. */
      async benchmark(runs) {
        const image = currentImage();
        const times = { forward: [], update: [] };
        for (let i = 0; i < runs; i++) {
          const start = performance.now();
          forward(net, image);
          times.forward.push(performance.now() - start);
        }
        for (let i = 0; i < runs; i++) {
          await new Promise((resolve) => requestAnimationFrame(resolve));
          const start = performance.now();
          update();
          times.update.push(performance.now() - start);
        }
        return times;
      },
      idle: () => new Promise((resolve) => requestAnimationFrame(() => resolve())),
    };
    root.liveCnn = api;

    function currentImage() {
      return state.dy || state.dx ? shifted(state.source, state.dy, state.dx) : state.source;
    }

    /** Draw into the source at the digit's place on the canvas: a moved
     * digit is first put down where it is. */
    function settle() {
      if (state.dy || state.dx) {
        state.source = shifted(state.source, state.dy, state.dx);
        state.dy = 0;
        state.dx = 0;
      }
      unmoved = null;
      if (state.digit !== null) {
        state.digit = null;
        digitMenu.menu.value = "";
      }
    }

    const inputSurfaces = [input, ...blockViews.map((view) => view.mini)].map(surface);
    function drawInput(image) {
      for (const { pixels, show } of inputSurfaces) {
        for (let i = 0; i < SIZE * SIZE; i++) {
          pixels[i] = GREYS[Math.round(255 * (1 - Math.min(1, Math.max(0, image[i]))))];
        }
        show();
      }
    }

    for (const view of blockViews) view.surface = surface(view.canvas);
    function drawMaps(view, values) {
      const { canvas, n, scale, channels } = view;
      const high = largest(values);
      for (let c = 0; c < channels; c++) {
        const x0 = (c % COLUMNS) * (MAP_PIXELS + GAP);
        const y0 = Math.floor(c / COLUMNS) * (MAP_PIXELS + GAP);
        const map = values.subarray(c * n * n, (c + 1) * n * n);
        paint(view.surface.pixels, canvas.width, x0, y0, map, n, scale, high);
      }
      view.surface.show();
      view.bar.show(high);
      return high;
    }

    const poolSurface = surface(poolCanvas);
    function drawPooled(values, high) {
      for (let c = 0; c < values.length; c++) {
        const x0 = (c % COLUMNS) * (CELL + GAP);
        const y0 = Math.floor(c / COLUMNS) * (CELL + GAP);
        const value = values.subarray(c, c + 1);
        paint(poolSurface.pixels, poolCanvas.width, x0, y0, value, 1, CELL, high);
      }
      poolSurface.show();
      poolBar.show(high);
    }

    function isEmpty(image) {
      return image.every((value) => value === 0);
    }

    function update() {
      const image = currentImage();
      const out = forward(net, image);
      drawInput(image);
      const highs = blockViews.map((view, b) => drawMaps(view, out.maps[b]));
      drawPooled(out.globalMax, highs[highs.length - 1]);
      blockViews.forEach((view, b) => {
        const { n, channels } = view;
        view.caption.textContent =
          `Block ${b + 1}: ${channels} maps of ${n} × ${n}` +
          (b > 0 ? ", after a 2 × 2 max pool" : "") +
          `; white 0, black ${format(highs[b])}` +
          (highs[b] === 0 ? " (0 everywhere)" : "");
      });
      const empty = isEmpty(image);
      root.dataset.empty = String(empty);
      let best = 0;
      out.probabilities.forEach((p, k) => {
        if (p > out.probabilities[best]) best = k;
      });
      bars.forEach(({ item, fill, value }, k) => {
        const p = out.probabilities[k];
        fill.style.width = empty ? "0" : `${100 * p}%`;
        value.textContent = empty ? "–" : percent(p);
        item.classList.toggle("live-cnn__best", !empty && k === best);
        item.setAttribute("aria-label", empty ? `${k}: no prediction` : `${k}: ${percent(p)}`);
      });
      const chance = percent(out.probabilities[best]);
      if (empty) headline.textContent = "The canvas is empty: draw a digit, or pick a test digit.";
      else if (out.probabilities[best] < STANDS_OUT) {
        headline.textContent = `No class stands out (best: ${best}, ${chance}).`;
      } else headline.textContent = `The network reads ${aDigit(best)} (${chance}).`;
      // How much a move changed what the classifier reads.
      if (state.dy === 0 && state.dx === 0) unmoved = out.globalMax;
      else unmoved ??= forward(net, state.source).globalMax;
      const change = relativeChange(unmoved, out.globalMax);
      status.textContent = moveText(change, empty, inkLost(image));
      api.output = {
        image,
        maps: out.maps,
        sizes: out.sizes,
        globalMax: out.globalMax,
        logits: out.logits,
        probabilities: out.probabilities,
        empty,
        change,
        prediction: empty ? null : best,
      };
      showUnit();
      return out;
    }

    /** Whether the move pushed ink off the canvas. Ink: pixels of at least
     * INK; the test digits' background noise stays below it. */
    function inkLost(image) {
      if (!state.dy && !state.dx) return false;
      const count = (pixels) => pixels.reduce((n, value) => n + (value >= INK), 0);
      return count(image) < count(state.source);
    }

    function moveText(change, empty, lost) {
      const { dy, dx } = state;
      if (dy === 0 && dx === 0) return "The digit is where it was drawn or picked.";
      const parts = [];
      // The counter stops where the move does: say so.
      const most = (d) => (Math.abs(d) === MAX_MOVE ? " (the most)" : "");
      if (dx) parts.push([Math.abs(dx), `${dx > 0 ? "right" : "left"}${most(dx)}`]);
      if (dy) parts.push([Math.abs(dy), `${dy > 0 ? "down" : "up"}${most(dy)}`]);
      const [first, ...rest] = parts.map(([d, way]) => `${d} ${way}`);
      const unit = parts[0][0] === 1 ? "pixel" : "pixels";
      const moved = `Moved ${[first.replace(" ", ` ${unit} `), ...rest].join(" and ")}`;
      if (empty) return `${moved}: the digit has left the canvas.`;
      const step = net.fields[net.fields.length - 1].step;
      const values = `; the ${last.channels} values the classifier reads changed by ${percent(change)}`;
      const onGrid = dy % step === 0 && dx % step === 0;
      const grid = `${onGrid ? "on" : "off"} block 3's ${step}-pixel grid`;
      if (lost) return `${moved}: ${grid}, but part of the digit left the canvas${values}.`;
      if (onGrid) {
        const cells = [];
        const count = (d) => `${Math.abs(d / step)} ${Math.abs(d) === step ? "cell" : "cells"}`;
        if (dx) cells.push(`${count(dx)} ${dx > 0 ? "right" : "left"}`);
        if (dy) cells.push(`${count(dy)} ${dy > 0 ? "down" : "up"}`);
        return (
          `${moved}: ${grid}, so its maps moved ${cells.join(" and ")}, but exactly ` +
          `so only where a unit's field stays off the canvas's border${values}.`
        );
      }
      return `${moved}: ${grid}, so its maps changed, not only moved${values}.`;
    }

    function showAbout() {
      about.textContent =
        `${net.trained ? "Trained" : "Untrained"}, seed ${net.seed}: it reads ` +
        `${percent(net.accuracy)} of the ${net.numTest} test digits right.`;
    }

    const POINT_AT =
      "Point at a unit of these maps, or Tab to them and use the arrow keys: " +
      "its receptive field is outlined here and on the input.";

    // The chosen unit and its receptive field.
    function showUnit() {
      blockViews.forEach((view) => {
        const chosen = Boolean(state.unit && state.unit.block === view.block);
        view.outline.hidden = !chosen;
        view.miniField.hidden = !chosen;
        if (!chosen) view.unitLine.textContent = POINT_AT;
      });
      if (!state.unit) {
        inputField.hidden = true;
        api.field = null;
        return;
      }
      const { block, channel, row, col } = state.unit;
      const view = blockViews[block];
      const { n, scale } = view;
      const x = (channel % COLUMNS) * (MAP_PIXELS + GAP) + col * scale;
      const y = Math.floor(channel / COLUMNS) * (MAP_PIXELS + GAP) + row * scale;
      const { width, height } = view.canvas;
      place(view.outline, x / width, y / height, scale / width, scale / height);
      const { size, step, start } = net.fields[block];
      const topRow = start + step * row;
      const leftCol = start + step * col;
      const r0 = Math.max(0, topRow);
      const c0 = Math.max(0, leftCol);
      const r1 = Math.min(SIZE, topRow + size);
      const c1 = Math.min(SIZE, leftCol + size);
      for (const box of [inputField, view.miniField]) {
        place(box, c0 / SIZE, r0 / SIZE, (c1 - c0) / SIZE, (r1 - r0) / SIZE);
      }
      inputField.hidden = false;
      const value = api.output.maps[block][(channel * n + row) * n + col];
      const cut = r1 - r0 < size || c1 - c0 < size ? ", cut by the canvas's border" : "";
      view.unitLine.textContent =
        `Block ${block + 1}, map ${channel + 1}, unit at row ${row + 1}, column ${col + 1}: ` +
        `value ${format(value)}. It sees input rows ${r0 + 1} to ${r1} and columns ` +
        `${c0 + 1} to ${c1} (its field is ${size} × ${size} pixels${cut}), outlined on ` +
        "the input and on the copy here (all counted from 1).";
      api.field = { top: topRow, left: leftCol, size, shown: [r0, c0, r1, c1] };
    }

    function place(box, left, top, width, height) {
      box.style.left = `${100 * left}%`;
      box.style.top = `${100 * top}%`;
      box.style.width = `${100 * width}%`;
      box.style.height = `${100 * height}%`;
    }

    function unitAt(view, event) {
      const rect = view.canvas.getBoundingClientRect();
      const x = ((event.clientX - rect.left) / rect.width) * view.canvas.width;
      const y = ((event.clientY - rect.top) / rect.height) * view.canvas.height;
      const gridCol = Math.floor(x / (MAP_PIXELS + GAP));
      const gridRow = Math.floor(y / (MAP_PIXELS + GAP));
      const inX = x - gridCol * (MAP_PIXELS + GAP);
      const inY = y - gridRow * (MAP_PIXELS + GAP);
      const channel = gridRow * COLUMNS + gridCol;
      const inGap = inX >= MAP_PIXELS || inY >= MAP_PIXELS;
      if (inGap || channel >= view.channels || gridCol >= COLUMNS) {
        return null;
      }
      return {
        block: view.block,
        channel,
        row: Math.floor(inY / view.scale),
        col: Math.floor(inX / view.scale),
      };
    }

    for (const view of blockViews) {
      const choose = (event) => {
        const unit = unitAt(view, event);
        if (unit) {
          state.unit = unit;
          showUnit();
        }
      };
      view.canvas.addEventListener("pointermove", choose);
      view.canvas.addEventListener("pointerdown", choose); // a tap, on a phone
      view.canvas.addEventListener("pointerleave", (event) => {
        // A finger lifted also leaves: keep the unit it tapped.
        if (event.pointerType === "mouse" && document.activeElement !== view.canvas) {
          state.unit = null;
          showUnit();
        }
      });
      view.canvas.addEventListener("focus", () => {
        if (!state.unit || state.unit.block !== view.block) {
          // Reached by Tab: start at the first unit of the first map.
          state.unit = { block: view.block, channel: 0, row: 0, col: 0 };
        }
        showUnit();
      });
      view.canvas.addEventListener("blur", () => {
        state.unit = null;
        showUnit();
      });
      view.canvas.addEventListener("keydown", (event) => {
        if (!(event.key in STEPS) || !state.unit) return;
        event.preventDefault();
        // Units in one grid across the maps: past a map's edge, the next map.
        const { n } = view;
        const unit = state.unit;
        let gx = (unit.channel % COLUMNS) * n + unit.col + STEPS[event.key][1];
        let gy = Math.floor(unit.channel / COLUMNS) * n + unit.row + STEPS[event.key][0];
        const rows = Math.ceil(view.channels / COLUMNS);
        gx = Math.min(COLUMNS * n - 1, Math.max(0, gx));
        gy = Math.min(rows * n - 1, Math.max(0, gy));
        const channel = Math.floor(gy / n) * COLUMNS + Math.floor(gx / n);
        if (channel >= view.channels) return;
        state.unit = { block: view.block, channel, row: gy % n, col: gx % n };
        showUnit();
      });
    }

    // Drawing and moving on the input canvas.
    let pending = false;
    function schedule() {
      if (pending) return;
      pending = true;
      requestAnimationFrame(() => {
        pending = false;
        update();
      });
    }

    function pixelAt(event) {
      const rect = input.getBoundingClientRect();
      return [
        ((event.clientX - rect.left) / rect.width) * SIZE,
        ((event.clientY - rect.top) / rect.height) * SIZE,
      ];
    }

    let drag = null;
    let pointerDrawn = false; // the keyboard's cursor hides while the pointer draws
    input.addEventListener("pointerdown", (event) => {
      if (event.button !== 0) return;
      event.preventDefault();
      pointerDrawn = true;
      input.focus({ preventScroll: true });
      showCursor();
      input.setPointerCapture(event.pointerId);
      const point = pixelAt(event);
      if (state.mode === "move") {
        drag = { start: point, dy: state.dy, dx: state.dx };
      } else {
        settle();
        drag = { last: point };
        stroke(state.source, point, point, brush(), state.mode === "erase");
        schedule();
      }
    });
    input.addEventListener("pointermove", (event) => {
      if (!drag) return;
      const point = pixelAt(event);
      if (state.mode === "move") {
        moveTo(
          drag.dy + Math.round(point[1] - drag.start[1]),
          drag.dx + Math.round(point[0] - drag.start[0]),
        );
      } else {
        stroke(state.source, drag.last, point, brush(), state.mode === "erase");
        drag.last = point;
        schedule();
      }
    });
    const endDrag = () => {
      drag = null;
    };
    input.addEventListener("pointerup", endDrag);
    input.addEventListener("pointercancel", endDrag);

    function brush() {
      return state.mode === "erase" ? ERASER : BRUSH;
    }

    function moveTo(dy, dx) {
      dy = Math.max(-MAX_MOVE, Math.min(MAX_MOVE, dy));
      dx = Math.max(-MAX_MOVE, Math.min(MAX_MOVE, dx));
      if (dy === state.dy && dx === state.dx) return;
      state.dy = dy;
      state.dx = dx;
      schedule();
    }

    function showCursor() {
      const drawing = state.mode !== "move" && document.activeElement === input;
      cursor.hidden = !drawing || pointerDrawn;
      const [row, col] = state.cursor;
      place(cursor, col / SIZE, row / SIZE, 1 / SIZE, 1 / SIZE);
    }

    input.addEventListener("focus", showCursor);
    input.addEventListener("blur", showCursor);
    input.addEventListener("keydown", (event) => {
      const centre = ([row, col]) => [col + 0.5, row + 0.5];
      if (event.key in STEPS || event.key === " " || event.key === "Enter") {
        pointerDrawn = false;
        showCursor();
      }
      if (event.key in STEPS) {
        event.preventDefault();
        const [sy, sx] = STEPS[event.key];
        if (state.mode === "move") {
          const by = event.shiftKey ? net.fields[net.fields.length - 1].step : 1;
          moveTo(state.dy + by * sy, state.dx + by * sx);
          update(); // at once: the keyboard's reader hears the result
          return;
        }
        const before = state.cursor;
        const after = [
          Math.max(0, Math.min(SIZE - 1, before[0] + sy)),
          Math.max(0, Math.min(SIZE - 1, before[1] + sx)),
        ];
        state.cursor = after;
        if (event.shiftKey) {
          settle();
          stroke(state.source, centre(before), centre(after), brush(), state.mode === "erase");
          update();
        }
        showCursor();
      } else if (event.key === " " || event.key === "Enter") {
        if (state.mode === "move") return;
        event.preventDefault();
        settle();
        const point = centre(state.cursor);
        stroke(state.source, point, point, brush(), state.mode === "erase");
        update();
      }
    });

    // The other controls.
    for (const [value, radio] of Object.entries(modeInputs)) {
      radio.checked = value === state.mode;
      radio.addEventListener("change", () => {
        state.mode = value;
        root.dataset.mode = value;
        showCursor();
      });
    }
    root.dataset.mode = state.mode;
    clear.addEventListener("click", () => {
      state.source = new Float32Array(SIZE * SIZE);
      state.dy = 0;
      state.dx = 0;
      state.digit = null;
      digitMenu.menu.value = "";
      unmoved = null;
      update();
    });
    digitMenu.menu.value = "";
    digitMenu.menu.addEventListener("change", async () => {
      const value = digitMenu.menu.value;
      if (value === "") return; // "your drawing": nothing to load
      root.dataset.ready = "loading";
      try {
        const picked = (await testDigits())[Number(value)];
        if (digitMenu.menu.value !== value) return; // the reader chose again
        state.digit = Number(value);
        state.source = picked.image.slice();
        state.dy = 0;
        state.dx = 0;
        unmoved = null;
        update();
      } catch (error) {
        digits = null; // try again next time
        digitMenu.menu.value = "";
        about.textContent =
          `The test digits could not be loaded (${error.message}): ` +
          "try reloading the page.";
        console.error("live CNN:", error);
      }
      root.dataset.ready = "true";
    });
    async function switchNetwork() {
      const kind = kindMenu.menu.value;
      const seed = Number(seedMenu.menu.value);
      root.dataset.ready = "loading";
      about.textContent = `Loading the ${kind} network, seed ${seed}…`;
      try {
        const chosen = await network(kind, seed);
        if (kindMenu.menu.value !== kind || Number(seedMenu.menu.value) !== seed) return;
        net = chosen;
        unmoved = null;
        showAbout();
        update();
        root.dataset.ready = "true";
      } catch (error) {
        about.textContent =
          `That network could not be loaded (${error.message}): try reloading the page.`;
        console.error("live CNN:", error);
        root.dataset.ready = "true";
      }
    }
    kindMenu.menu.addEventListener("change", switchNetwork);
    seedMenu.menu.addEventListener("change", switchNetwork);

    showAbout();
    update();
    root.querySelector(".live-cnn__status")?.remove();
    root.dataset.ready = "true";
  }

  window.bookWidget({
    name: "live CNN",
    selector: ".live-cnn",
    stylesheet: new URL("../stylesheets/live-cnn.css", document.currentScript.src).href,
    setUp,
    failure: {
      statusClass: "live-cnn__status",
      what: "The live network",
      fromDisk: "Opened as a file from disk, the page cannot read the network's weights. ",
      otherwise: "A file of weights may have failed to load: try reloading the page. ",
    },
  });
})();
