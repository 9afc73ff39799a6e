// ganforge studio: drives the JSON API under /api/ (see the README). No libraries, no network
// access beyond this server.
"use strict";

const $ = (id) => document.getElementById(id);
const state = {
  runs: [], run: null, limits: null, reportAvailable: false,
  file: null, image: null, mask: null, drawing: false, last: null, boxStart: null,
};
const TASK_HINTS = {
  inpaint: "Paint the hole with the brush (or drag a box), then Run: the network fills it.",
  replace: "Paint or box the region and pick the class to draw in it, then Run.",
  "super-resolve": "Upload an image and Run: the result is upscaled by the run's factor.",
  denoise: "Upload a noisy photo and Run.",
  colorize: "Upload a photo (colour or gray) and Run: the network colours its gray version.",
  enhance: "Upload a dark or blurred photo and Run.",
  pix2pix: "Upload an input of the run's kind (e.g. a line drawing) and Run.",
  translate: "Upload an image, pick the direction and Run.",
};

// API calls: JSON errors become one readable line.
async function api(path, options) {
  const response = await fetch(path, options);
  if (!response.ok) {
    let message = `${response.status} ${response.statusText}`;
    try {
      const body = await response.json();
      if (body.error) message = body.error;
    } catch (_) { /* not JSON */ }
    throw new Error(message);
  }
  return response;
}

function say(text, isError = false) {
  $("status").textContent = text;
  $("status").classList.toggle("error", isError);
}

function runPath(suffix = "") {
  return `/api/runs/${encodeURIComponent(state.run.name)}${suffix}`;
}

// Show a PNG blob in an <img>, enlarged by a whole factor when it is small.
function showBlob(img, blob, width = null) {
  if (img.src.startsWith("blob:")) URL.revokeObjectURL(img.src);
  img.onload = () => {
    const shown = width || img.naturalWidth * Math.max(1, Math.min(8, Math.floor(640 / img.naturalWidth)));
    img.style.width = `${shown}px`;
    img.hidden = false;
  };
  img.src = URL.createObjectURL(blob);
}

function fillClasses(select, names, count, first) {
  select.replaceChildren();
  if (first !== null) select.append(new Option(first, ""));
  for (let i = 0; i < count; i++) {
    const name = names[i] && names[i] !== String(i) ? `${i}: ${names[i]}` : String(i);
    select.append(new Option(name, String(i)));
  }
}

// Runs.
async function init() {
  try {
    const [runs, health] = await Promise.all([api("/api/runs"), api("/api/health")]);
    const listing = await runs.json();
    state.runs = listing.runs;
    state.reportAvailable = listing.report;
    state.limits = (await health.json()).limits;
  } catch (error) {
    say(`Cannot reach the studio's API: ${error.message}`, true);
    return;
  }
  const select = $("run-select");
  for (const run of state.runs) select.append(new Option(`${run.name} (${run.task})`, run.name));
  const wanted = decodeURIComponent(location.hash.slice(1));
  if (state.runs.some((run) => run.name === wanted)) select.value = wanted;
  select.addEventListener("change", () => selectRun(select.value));
  await selectRun(select.value);
}

async function selectRun(name) {
  let info;
  try {
    info = await (await api(`/api/runs/${encodeURIComponent(name)}`)).json();
  } catch (error) {
    say(error.message, true);
    return;
  }
  state.run = info;
  history.replaceState(null, "", `#${encodeURIComponent(name)}`);
  $("run-meta").textContent = `${info.task} · ${info.model} on ${info.data} · step ${info.step}`;
  $("generate-panel").hidden = info.kind !== "generate";
  $("edit-panel").hidden = info.kind === "generate";
  if (info.kind === "generate") setUpGenerate(info); else setUpEdit(info);
  showEvaluation(info.eval);
  say(`${info.name}: ready.`);
}

// Generation: grids and interpolations.
function setUpGenerate(info) {
  const conditional = info.num_classes > 0;
  for (const label of document.querySelectorAll("#generate-panel .conditional")) label.hidden = !conditional;
  fillClasses($("sample-class"), info.class_names, info.num_classes, "each class in turn");
  fillClasses($("interp-class"), info.class_names, info.num_classes, null);
  fillClasses($("interp-class-to"), info.class_names, info.num_classes, "same class");
  $("sample-n").max = state.limits.max_n;
  $("interp-steps").max = state.limits.max_steps;
  $("grid").hidden = true;
  $("strip").hidden = true;
}

$("sample-truncation").addEventListener("input", (event) => {
  $("truncation-value").textContent = Number(event.target.value).toFixed(2);
});

async function fetchImage(url, img, button, what) {
  button.disabled = true;
  say(`${what}…`);
  const start = performance.now();
  try {
    const blob = await (await api(url)).blob();
    showBlob(img, blob);
    say(`${what}: done in ${((performance.now() - start) / 1000).toFixed(2)} s.`);
  } catch (error) {
    say(error.message, true);
  } finally {
    button.disabled = false;
  }
}

$("sample-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const params = new URLSearchParams({ n: $("sample-n").value, seed: $("sample-seed").value });
  if ($("sample-class").value !== "") params.set("class", $("sample-class").value);
  const psi = Number($("sample-truncation").value);
  if (psi !== 1) params.set("truncation", String(psi));
  if ($("sample-keep-best").value !== "") params.set("keep_best", $("sample-keep-best").value);
  fetchImage(runPath(`/sample?${params}`), $("grid"), $("sample-button"), "Sampling");
});

$("interpolate-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const params = new URLSearchParams({ from: $("interp-from").value, to: $("interp-to").value,
                                       steps: $("interp-steps").value });
  if (state.run.num_classes > 0) {
    params.set("class", $("interp-class").value);
    if ($("interp-class-to").value !== "") params.set("class_to", $("interp-class-to").value);
  }
  fetchImage(runPath(`/interpolate?${params}`), $("strip"), $("interpolate-button"), "Interpolating");
});

// Editing: an image, a mask painted on a canvas, the task's options, before and after.
function setUpEdit(info) {
  const masked = Boolean(info.needs_mask);
  $("edit-title").textContent = info.kind === "translate" ? "Translate" : `Edit: ${info.task}`
    + (info.scale > 1 ? ` x${info.scale}` : "");
  $("mask-tools").hidden = !masked;
  $("overlay").hidden = !masked;
  $("edit-class-label").hidden = !info.needs_class;
  fillClasses($("edit-class"), info.class_names, info.needs_class ? info.num_classes : 0, null);
  $("direction-label").hidden = info.kind !== "translate";
  $("direction").replaceChildren();
  for (const [value, text] of Object.entries(info.directions || {})) $("direction").append(new Option(text, value));
  $("edit-hint").textContent = TASK_HINTS[info.task] || "Upload an image and Run.";
  $("result").hidden = true;
  if (state.mask) clearMask();
}

$("image-input").addEventListener("change", () => {
  const file = $("image-input").files[0];
  if (!file) return;
  if (file.size > state.limits.max_upload_mb * 2 ** 20) {
    say(`${file.name} is ${(file.size / 2 ** 20).toFixed(1)} MB; this studio takes up to ${state.limits.max_upload_mb} MB.`, true);
    return;
  }
  const image = new Image();
  image.onload = () => {
    const side = Math.max(image.naturalWidth, image.naturalHeight);
    if (side > state.limits.max_side) {
      say(`${file.name} is ${image.naturalWidth}x${image.naturalHeight}; this studio takes sides up to ${state.limits.max_side} px.`, true);
      return;
    }
    state.file = file;
    state.image = image;
    showPhoto(image);
    $("edit-button").disabled = false;
    $("result").hidden = true;
    say(`${file.name}: ${image.naturalWidth}x${image.naturalHeight}.`);
  };
  image.onerror = () => say(`This browser cannot show ${file.name}; the API takes it (see the README).`, true);
  image.src = URL.createObjectURL(file);
});

// The photo and its mask at the image's own size, shown at a comfortable size.
function showPhoto(image) {
  const width = image.naturalWidth, height = image.naturalHeight;
  const scale = Math.min(8, 512 / Math.max(width, height));
  for (const canvas of [$("photo"), $("overlay")]) {
    canvas.width = width;
    canvas.height = height;
    canvas.style.width = `${Math.round(width * scale)}px`;
    canvas.style.height = `${Math.round(height * scale)}px`;
  }
  $("photo").getContext("2d").drawImage(image, 0, 0);
  state.mask = document.createElement("canvas");
  state.mask.width = width;
  state.mask.height = height;
  redrawOverlay();
}

function clearMask() {
  state.mask.getContext("2d").clearRect(0, 0, state.mask.width, state.mask.height);
  redrawOverlay();
}
$("clear-mask").addEventListener("click", () => state.mask && clearMask());

function tool() {
  return document.querySelector("input[name=tool]:checked").value;
}

function imagePoint(event) {
  const box = $("overlay").getBoundingClientRect();
  return { x: (event.clientX - box.left) * $("overlay").width / box.width,
           y: (event.clientY - box.top) * $("overlay").height / box.height };
}

function boxFrom(a, b) {
  return { x: Math.min(a.x, b.x), y: Math.min(a.y, b.y), w: Math.abs(a.x - b.x), h: Math.abs(a.y - b.y) };
}

// The overlay shows the mask (white on transparent) in translucent red, plus a box being dragged.
function redrawOverlay(preview = null) {
  const overlay = $("overlay"), context = overlay.getContext("2d");
  context.globalCompositeOperation = "source-over";
  context.clearRect(0, 0, overlay.width, overlay.height);
  context.drawImage(state.mask, 0, 0);
  if (preview) {
    context.fillStyle = "#fff";
    context.fillRect(preview.x, preview.y, preview.w, preview.h);
  }
  context.globalCompositeOperation = "source-in";
  context.fillStyle = "rgba(255, 40, 40, 0.55)";
  context.fillRect(0, 0, overlay.width, overlay.height);
  context.globalCompositeOperation = "source-over";
}

function paint(from, to) {
  const context = state.mask.getContext("2d");
  const pixelsPerCss = $("overlay").width / $("overlay").getBoundingClientRect().width;
  context.globalCompositeOperation = tool() === "eraser" ? "destination-out" : "source-over";
  context.strokeStyle = "#fff";
  context.lineWidth = Math.max(1, Number($("brush-size").value) * pixelsPerCss);
  context.lineCap = context.lineJoin = "round";
  context.beginPath();
  context.moveTo(from.x, from.y);
  context.lineTo(to.x, to.y);
  context.stroke();
  redrawOverlay();
}

$("overlay").addEventListener("pointerdown", (event) => {
  if (!state.mask) return;
  $("overlay").setPointerCapture(event.pointerId);
  const point = imagePoint(event);
  if (tool() === "box") {
    state.boxStart = point;
  } else {
    state.drawing = true;
    state.last = point;
    paint(point, point);
  }
});

$("overlay").addEventListener("pointermove", (event) => {
  if (!state.mask) return;
  const point = imagePoint(event);
  if (state.drawing) {
    paint(state.last, point);
    state.last = point;
  } else if (state.boxStart) {
    redrawOverlay(boxFrom(state.boxStart, point));
  }
});

function endStroke(event) {
  if (state.boxStart) {
    const box = boxFrom(state.boxStart, imagePoint(event));
    const context = state.mask.getContext("2d");
    context.globalCompositeOperation = "source-over";
    context.fillStyle = "#fff";
    context.fillRect(Math.floor(box.x), Math.floor(box.y), Math.ceil(box.w), Math.ceil(box.h));
    state.boxStart = null;
    redrawOverlay();
  }
  state.drawing = false;
}
$("overlay").addEventListener("pointerup", endStroke);
$("overlay").addEventListener("pointercancel", endStroke);

// The mask as the API reads it: white (hole) on black, a PNG of the image's size.
function maskBlob() {
  const { width, height } = state.mask;
  const alpha = state.mask.getContext("2d").getImageData(0, 0, width, height).data;
  let painted = false;
  for (let i = 3; i < alpha.length; i += 4) if (alpha[i] > 0) { painted = true; break; }
  if (!painted) return Promise.resolve(null);
  const out = document.createElement("canvas");
  out.width = width;
  out.height = height;
  const context = out.getContext("2d");
  context.fillStyle = "#000";
  context.fillRect(0, 0, width, height);
  context.drawImage(state.mask, 0, 0);
  return new Promise((resolve) => out.toBlob(resolve, "image/png"));
}

$("edit-button").addEventListener("click", async () => {
  if (!state.file) return;
  const form = new FormData();
  form.append("image", state.file, state.file.name);
  if (state.run.needs_mask) {
    const mask = await maskBlob();
    if (!mask) {
      say("Paint the hole first (brush or box).", true);
      return;
    }
    form.append("mask", mask, "mask.png");
  }
  if (state.run.needs_class) form.append("class", $("edit-class").value);
  if (state.run.kind === "translate") form.append("direction", $("direction").value);
  $("edit-button").disabled = true;
  say("Running…");
  const start = performance.now();
  try {
    const blob = await (await api(runPath("/edit"), { method: "POST", body: form })).blob();
    showBlob($("result"), blob, $("photo").getBoundingClientRect().width);
    say(`Done in ${((performance.now() - start) / 1000).toFixed(2)} s.`);
  } catch (error) {
    say(error.message, true);
  } finally {
    $("edit-button").disabled = false;
  }
});

// Evaluation numbers (RUN/eval.json) and the report: one column per group of numbers (the
// model, the real-data floor, each baseline), one row per metric; "setup" below, folded.
function flatten(value, prefix, rows) {
  for (const [key, item] of Object.entries(value)) {
    const name = prefix ? `${prefix}.${key}` : key;
    if (item !== null && typeof item === "object" && !Array.isArray(item)) flatten(item, name, rows);
    else if (["number", "string", "boolean"].includes(typeof item)) rows.push([name, item]);
  }
  return rows;
}

function formatValue(value) {
  return typeof value === "number" && !Number.isInteger(value) ? Number(value.toPrecision(4)).toString() : String(value);
}

function showEvaluation(evaluation) {
  const table = $("eval-table"), setup = $("setup-table").tBodies[0];
  table.tHead.replaceChildren();
  table.tBodies[0].replaceChildren();
  setup.replaceChildren();
  $("eval-none").hidden = Boolean(evaluation);
  table.hidden = $("eval-setup").hidden = !evaluation;
  const leaves = evaluation ? flatten(evaluation, "", []) : [];
  const groups = new Map(), metrics = [];
  for (const [path, value] of leaves) {
    if (path.startsWith("setup.") || typeof value !== "number") {
      const row = setup.insertRow();
      row.insertCell().textContent = path.replace(/^setup\./, "");
      row.insertCell().textContent = formatValue(value);
      continue;
    }
    const cut = path.lastIndexOf(".");
    const group = cut < 0 ? "" : path.slice(0, cut), metric = path.slice(cut + 1);
    if (!groups.has(group)) groups.set(group, new Map());
    groups.get(group).set(metric, value);
    if (!metrics.includes(metric)) metrics.push(metric);
  }
  // Column titles: the group's last part (model, floor, nl_means), or all of it where that repeats.
  const names = [...groups.keys()];
  const last = (group) => group.split(".").pop() || "value";
  const title = (group) => names.filter((other) => last(other) === last(group)).length > 1 ? group : last(group);
  const head = table.tHead.insertRow();
  for (const text of ["", ...names.map(title)]) head.append(Object.assign(document.createElement("th"), { textContent: text }));
  for (const metric of metrics) {
    const row = table.tBodies[0].insertRow();
    row.insertCell().textContent = metric;
    for (const group of names) {
      const value = groups.get(group).get(metric);
      row.insertCell().textContent = value === undefined ? "" : formatValue(value);
    }
  }
  $("eval-setup").hidden = !setup.rows.length;
  const link = $("report-link");
  link.hidden = !state.reportAvailable;
  link.href = runPath("/report");
}

init();
