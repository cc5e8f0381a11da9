// The explorer page's live decoder (book/_ext/live_decoder.py puts it on the page): sliders set the latent
// vector z of each exported VAE decoder, onnxruntime-web decodes it in the browser, a canvas shows the image.
//
// Inputs, all set by scripts placed before this one (none is fetched: a page opened from file:// may not):
//   window.DVAE_LIVE_DECODERS        decoders.json of dvae_core.browser, each model's ONNX file as base64
//   window.DVAE_ORT_WASM_GZ_BASE64   onnxruntime-web's WebAssembly binary, gzipped, base64
//   window.ort                       onnxruntime-web's API, set by the page's inline module script, which
//                                    then fires "dvae-ort-ready"
// State for readers and tests, on the container: data-state = loading | ready | error; on each panel:
// data-decodes (decodings drawn so far) and data-max-abs-diff (the reference decoding vs torch's).
(function () {
  "use strict";

  const UNUSED_KL = 0.05;  // nats: a latent below this carries (almost) nothing and is greyed

  function bytes(base64) {
    const text = atob(base64);
    const out = new Uint8Array(text.length);
    for (let i = 0; i < text.length; i++) out[i] = text.charCodeAt(i);
    return out;
  }

  async function gunzip(data) {
    const stream = new Blob([data]).stream().pipeThrough(new DecompressionStream("gzip"));
    return new Uint8Array(await new Response(stream).arrayBuffer());
  }

  function element(tag, attrs, children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (key === "text") node.textContent = value;
      else node.setAttribute(key, value);
    }
    for (const child of children || []) node.appendChild(child);
    return node;
  }

  // CHW floats in [0, 1] onto a canvas of the image's size (CSS scales it up, pixelated)
  function draw(canvas, pixels, shape) {
    const [channels, height, width] = shape;
    const context = canvas.getContext("2d");
    const picture = context.createImageData(width, height);
    const plane = height * width;
    for (let i = 0; i < plane; i++) {
      for (let c = 0; c < 3; c++) {
        const v = pixels[(channels === 1 ? 0 : c) * plane + i];
        picture.data[4 * i + c] = Math.round(255 * Math.min(1, Math.max(0, v)));
      }
      picture.data[4 * i + 3] = 255;
    }
    context.putImageData(picture, 0, 0);
  }

  class Panel {
    constructor(model, description, session) {
      const images = description.images;
      this.model = model;
      this.session = session;
      this.range = description.slider_range;
      this.z = new Float32Array(model.latent_dim);
      this.pending = false;
      this.running = false;
      this.decodes = 0;
      const [, height, width] = model.image_shape;
      this.seed = element("img", {class: "live-seed", width: width, height: height, src: images[0],
                                  alt: "seed image 1"});
      this.canvas = element("canvas", {class: "live-output", width: width, height: height, role: "img",
                                       "aria-label": `${model.title}: the decoded image`});
      this.sliders = [];
      const rows = model.order.map(d => {
        const input = element("input", {type: "range", min: this.range[0], max: this.range[1], step: "0.05",
                                        value: "0", "data-dim": d,
                                        "aria-label": `${model.title}: latent z${d}`});
        const value = element("output", {text: "0.00"});
        input.addEventListener("input", () => {
          this.z[d] = Number(input.value);
          value.textContent = this.z[d].toFixed(2);
          this.request();
        });
        this.sliders[d] = {input, value};
        const kl = model.kl[d];
        const unused = kl < UNUSED_KL;
        const name = element("span", {class: unused ? "live-latent unused" : "live-latent",
                                      title: `KL ${kl.toFixed(3)} nats${unused ? ": unused, it changes nothing" : ""}`,
                                      text: `z${d} · KL ${kl.toFixed(2)}`});
        return element("label", {class: "live-slider"}, [name, input, value]);
      });
      this.node = element("figure", {class: "live-panel", "data-model": model.key, "data-decodes": "0"}, [
        element("figcaption", {text: model.title}),
        element("div", {class: "live-images"}, [
          element("div", {}, [this.seed, element("span", {text: "seed image"})]),
          element("div", {}, [this.canvas, element("span", {text: "decoded from the sliders' z"}),
                              this.timing = element("span", {class: "live-timing", text: ""})]),
        ]),
        element("div", {class: "live-sliders"}, rows),
      ]);
    }

    start(images, index) {
      this.seed.src = images[index];
      this.seed.alt = `seed image ${index + 1}`;
      this.model.posterior_means[index].forEach((v, d) => {
        const clipped = Math.min(this.range[1], Math.max(this.range[0], v));
        this.z[d] = v;
        this.sliders[d].input.value = String(clipped);
        this.sliders[d].value.textContent = v.toFixed(2);
      });
      this.request();
    }

    async decode(z) {
      const input = new window.ort.Tensor("float32", Float32Array.from(z), [1, z.length]);
      const result = await this.session.run({z: input});
      return result.image.data;
    }

    // one decoding at a time; slider moves during it are folded into the next one
    request() {
      this.pending = true;
      if (!this.running) this.loop();
    }

    async loop() {
      this.running = true;
      try {
        while (this.pending) {
          this.pending = false;
          const started = performance.now();
          draw(this.canvas, await this.decode(this.z), this.model.image_shape);
          const ms = performance.now() - started;
          this.decodes += 1;
          this.node.dataset.decodes = String(this.decodes);
          this.node.dataset.decodeMs = ms.toFixed(1);
          this.timing.textContent = `decoded in ${ms < 1 ? "< 1" : Math.round(ms)} ms`;
        }
      } catch (error) {
        console.error(`live decoder ${this.model.key}:`, error);
      } finally {
        this.running = false;
      }
    }

    // the page decodes the reference z again and compares with torch's image (dvae_core.browser)
    async check(tolerance) {
      const reference = this.model.reference;
      const pixels = await this.decode(this.model.posterior_means[reference.image]);
      let worst = 0;
      reference.pixels.forEach((v, i) => { worst = Math.max(worst, Math.abs(v - pixels[i])); });
      this.node.dataset.maxAbsDiff = String(worst);
      if (!(worst <= tolerance)) {
        console.error(`live decoder ${this.model.key}: decodes ${worst} away from torch (tolerance ${tolerance})`);
      }
      return worst;
    }
  }

  async function start(container) {
    const description = window.DVAE_LIVE_DECODERS;
    const ort = window.ort;
    ort.env.wasm.numThreads = 1;  // not cross-origin isolated: no shared memory for threads
    ort.env.wasm.proxy = false;
    ort.env.wasm.wasmBinary = await gunzip(bytes(window.DVAE_ORT_WASM_GZ_BASE64));
    const panels = [];
    for (const model of description.models) {
      const session = await ort.InferenceSession.create(bytes(model.onnx_base64), {executionProviders: ["wasm"]});
      panels.push(new Panel(model, description, session));
    }
    const chooser = element("div", {class: "live-chooser", role: "group", "aria-label": "seed image"},
      description.images.map((src, i) => {
        const button = element("button", {type: "button", title: `start from seed image ${i + 1}`,
                                          "aria-pressed": String(i === 0)},
                               [element("img", {src: src, alt: `seed image ${i + 1}`})]);
        button.addEventListener("click", () => {
          chooser.querySelectorAll("button").forEach(b => b.setAttribute("aria-pressed", String(b === button)));
          panels.forEach(p => p.start(description.images, i));
        });
        return button;
      }));
    container.textContent = "";
    container.appendChild(element("p", {class: "live-help",
      text: "Choose a seed image: every slider starts at its posterior mean. Move a slider to set that latent; " +
            "the image is decoded in your browser. Latents are listed by their KL (nats per image, on the " +
            "seed images), informative ones first; a greyed latent carries almost nothing and changes nothing."}));
    container.appendChild(chooser);
    container.appendChild(element("div", {class: "live-panels"}, panels.map(p => p.node)));
    for (const panel of panels) await panel.check(description.tolerance);
    panels.forEach(p => p.start(description.images, 0));
    container.dataset.state = "ready";
  }

  function run() {
    const container = document.querySelector(".dvae-live-decoder");
    if (!container) return;
    start(container).catch(error => {
      container.dataset.state = "error";
      container.textContent = "The live decoder could not start in this browser: " + error;
      console.error("live decoder:", error);
    });
  }

  if (window.ort) run();
  else window.addEventListener("dvae-ort-ready", run, {once: true});
})();
