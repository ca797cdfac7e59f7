// The page of `python run.py serve`: a digit drawn (or dropped) here goes to the server as a PNG, comes back
// prepared as `predict` prepares a file (POST /prepare), and is then classified through the server's own
// TensorFlow Serving API, as any client would: serving_default for the probabilities, layers for what each layer
// computed from it.
"use strict";

const MODEL = document.querySelector('meta[name="graph-nn-model"]').content;
const PREDICT = `/v1/models/${encodeURIComponent(MODEL)}:predict`;
const INK_WIDTH = 20; // of the 280-pixel square: after the fit to 20x20 a stroke is ~1.5 MNIST pixels wide, as theirs

const pad = document.getElementById("pad");
const ink = pad.getContext("2d");
const statusLine = document.getElementById("status");
let layerNames = []; // the layers signature's outputs, in the network's order; empty when the export has none
let stroke = null; // the pointer drawing now

function say(text, isError = false) {
  statusLine.textContent = text;
  statusLine.classList.toggle("error", isError);
}

async function answerOf(response) {
  const answer = await response.json();
  if (!response.ok) throw new Error(answer.error || `HTTP ${response.status}`);
  return answer;
}

async function post(path, body, type = "application/json") {
  return answerOf(await fetch(path, { method: "POST", headers: { "Content-Type": type }, body }));
}

function clearPad() {
  ink.fillStyle = "white";
  ink.fillRect(0, 0, pad.width, pad.height);
}

// ---- drawing ----------------------------------------------------------------------------------------------

function padPoint(event) {
  const box = pad.getBoundingClientRect();
  return [((event.clientX - box.left) * pad.width) / box.width, ((event.clientY - box.top) * pad.height) / box.height];
}

pad.addEventListener("pointerdown", (event) => {
  pad.setPointerCapture(event.pointerId);
  stroke = padPoint(event);
  ink.strokeStyle = "black";
  ink.lineWidth = INK_WIDTH;
  ink.lineCap = ink.lineJoin = "round";
  ink.beginPath();
  ink.moveTo(...stroke);
  ink.lineTo(...stroke); // a tap leaves a dot
  ink.stroke();
});

pad.addEventListener("pointermove", (event) => {
  if (!stroke) return;
  ink.beginPath();
  ink.moveTo(...stroke);
  stroke = padPoint(event);
  ink.lineTo(...stroke);
  ink.stroke();
});

function endStroke() {
  if (!stroke) return;
  stroke = null;
  pad.toBlob((png) => classify(png), "image/png");
}
pad.addEventListener("pointerup", endStroke);
pad.addEventListener("pointercancel", endStroke);

document.getElementById("clear").addEventListener("click", () => {
  clearPad();
  say("Draw with the mouse or a finger, or drop an image file on the square.");
});

// ---- an image file, dropped or chosen: its own bytes are prepared, the square only shows it --------------

async function openFile(file) {
  clearPad();
  try {
    const picture = await createImageBitmap(file);
    const scale = Math.min(pad.width / picture.width, pad.height / picture.height);
    const [width, height] = [picture.width * scale, picture.height * scale];
    ink.drawImage(picture, (pad.width - width) / 2, (pad.height - height) / 2, width, height);
  } catch {
    // a file the browser cannot show may still be one the server reads (a 16-bit PNG, a TIFF): it answers
  }
  classify(file);
}

pad.addEventListener("dragover", (event) => {
  event.preventDefault();
  pad.classList.add("dropping");
});
pad.addEventListener("dragleave", () => pad.classList.remove("dropping"));
pad.addEventListener("drop", (event) => {
  event.preventDefault();
  pad.classList.remove("dropping");
  if (event.dataTransfer.files.length) openFile(event.dataTransfer.files[0]);
});
document.getElementById("file").addEventListener("change", (event) => {
  if (event.target.files.length) openFile(event.target.files[0]);
});

// ---- asking the server -----------------------------------------------------------------------------------

async function classify(image) {
  say("Asking the server ...");
  try {
    const { x } = await post("/prepare", image, image.type || "application/octet-stream");
    const asked = [post(PREDICT, JSON.stringify({ instances: [x] }))];
    if (layerNames.length) asked.push(post(PREDICT, JSON.stringify({ signature_name: "layers", instances: [x] })));
    const [prediction, layers] = await Promise.all(asked);
    showPrediction(prediction.predictions[0]);
    showSeen(x);
    if (layers) showLayers(layers.predictions[0]);
    say("Draw again to add strokes, or Clear to start over.");
    document.body.dataset.predictions = Number(document.body.dataset.predictions) + 1;
  } catch (error) {
    say(error.message, true);
  }
}

// ---- what it answered ------------------------------------------------------------------------------------

function showPrediction({ probabilities, class: digit }) {
  document.getElementById("digit").textContent = digit;
  const bars = document.getElementById("bars");
  bars.replaceChildren(
    ...probabilities.map((p, label) => {
      const row = document.createElement("div");
      row.className = label === digit ? "bar chosen" : "bar";
      row.dataset.digit = label;
      row.innerHTML = `<span>${label}</span><div class="track"><div class="fill"></div></div><span class="value"></span>`;
      row.querySelector(".fill").style.width = `${(100 * p).toFixed(1)}%`;
      row.querySelector(".value").textContent = p.toFixed(4);
      return row;
    }),
  );
}

// values in [0, maximum] as grey pixels of a width x height canvas, drawn `zoom` screen pixels a pixel
function greyCanvas(values, width, height, maximum, zoom, canvas = document.createElement("canvas")) {
  canvas.width = width;
  canvas.height = height;
  const context = canvas.getContext("2d");
  const pixels = context.createImageData(width, height);
  values.forEach((value, i) => {
    const grey = maximum > 0 ? Math.round((255 * Math.max(value, 0)) / maximum) : 0;
    pixels.data.set([grey, grey, grey, 255], 4 * i);
  });
  context.putImageData(pixels, 0, 0);
  if (zoom) {
    canvas.style.width = `${width * zoom}px`;
    canvas.style.height = `${height * zoom}px`;
  }
  return canvas;
}

function showSeen(x) {
  greyCanvas(x, 28, 28, 1, 0, document.getElementById("seen"));
}

// A dense layer's units as a grid of cells; a convolution's [height][width][channels] as one small picture per
// channel (feature map), each normalized by the layer's largest activation so that maps compare.
function showLayers(activations) {
  const panels = layerNames.map((name) => {
    const value = activations[name];
    const panel = document.createElement("div");
    panel.className = "layer";
    panel.dataset.layer = name;
    const title = document.createElement("h3");
    const maps = document.createElement("div");
    maps.className = "maps";
    if (Array.isArray(value[0])) {
      const [height, width, channels] = [value.length, value[0].length, value[0][0].length];
      const flat = value.flat(2);
      const maximum = Math.max(...flat);
      const zoom = Math.max(1, Math.floor(52 / height));
      for (let channel = 0; channel < channels; channel++) {
        const map = flat.filter((_, i) => i % channels === channel);
        maps.append(greyCanvas(map, width, height, maximum, zoom));
      }
      title.textContent = `${name}: ${channels} feature maps of ${height}×${width}`;
    } else {
      const columns = Math.ceil(Math.sqrt(value.length));
      const rows = Math.ceil(value.length / columns);
      const cells = greyCanvas(value, columns, rows, Math.max(...value), Math.max(4, Math.floor(160 / columns)));
      cells.className = "units";
      maps.append(cells);
      title.textContent = name === "output" ? `output: the ${value.length} logits` : `${name}: ${value.length} units`;
    }
    panel.append(title, maps);
    return panel;
  });
  document.getElementById("layers").replaceChildren(...panels);
}

// ---- what the server serves ------------------------------------------------------------------------------

async function describeModel() {
  const metadata = await answerOf(await fetch(`/v1/models/${encodeURIComponent(MODEL)}/metadata`));
  const signatures = metadata.metadata.signature_def.signature_def;
  const outputs = Object.keys(signatures.layers ? signatures.layers.outputs : {});
  // the layers' scopes sort in the network's order (conv1 < conv2 < fc1, hidden1 < hidden2); the logits come last
  layerNames = outputs.filter((name) => name !== "output").sort();
  if (outputs.includes("output")) layerNames.push("output");
  document.getElementById("layers-section").hidden = !layerNames.length;
  document.getElementById("model").textContent =
    `Model ${MODEL}, version ${metadata.model_spec.version}` +
    (layerNames.length ? `: ${layerNames.join(" → ")}` : " (exported without the layers signature: export it again)");
}

clearPad();
describeModel().catch((error) => say(`The server's metadata: ${error.message}`, true));
