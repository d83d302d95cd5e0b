// The onestep page: regenerates as you type over the WebSocket at /ws (latest prompt wins), shows
// the latency of the last generation, and sends an uploaded image for img2img. Plain browser
// JavaScript, served as is (no build step).
'use strict';

const DEBOUNCE_MS = 120;
const $ = (id) => document.getElementById(id);
const el = {
  prompt: $('prompt'), negative: $('negative'), seed: $('seed'), reseed: $('reseed'), steps: $('steps'), size: $('size'),
  guidance: $('guidance'), image: $('image'), strength: $('strength'), strengthOut: $('strengthOut'), clearImage: $('clearImage'),
  source: $('source'), output: $('output'), placeholder: $('placeholder'), latency: $('latency'), detail: $('detail'),
  error: $('error'), conn: $('conn'), model: $('model'), keyRow: $('keyRow'), apiKey: $('apiKey'), saveKey: $('saveKey'),
  scribbleSet: $('scribbleSet'), scribble: $('scribble'), brush: $('brush'), undo: $('undo'), clearScribble: $('clearScribble'),
  controlScale: $('controlScale'), controlScaleOut: $('controlScaleOut'), controlNetRow: $('controlNetRow'), controlNet: $('controlNet'),
};

let key = sessionStorage.getItem('onestep-key') || '';
let ws = null;
let retryMs = 500;
let timer = 0;
let seq = 0;          // id of the last request sent
let shown = 0;        // id of the image on screen
const sent = new Map(); // id -> { at, prompt, mode }
let sourceBitmap = null;
let sourcePng = null; // data URL of the img2img input at the chosen size
let stepsTouched = false; // the user changed the steps (else img2img leaves them to the server)
// the scribble: strokes of points in canvas units (0..1), white on black, as scribble ControlNets expect
const strokes = [];
let drawing = null;
let lastSent = 0;
const SCRIBBLE_MIN_MS = 60; // at most one control image per 60 ms while drawing; the server drops stale ones

function headers() {
  return key ? { Authorization: `Bearer ${key}` } : {};
}

function showError(message) {
  el.error.textContent = message || '';
  el.error.hidden = !message;
}

async function loadInfo() {
  const r = await fetch('info', { headers: headers() });
  if (r.status === 401) {
    el.keyRow.hidden = false;
    throw new Error('this server needs an API key');
  }
  if (!r.ok) throw new Error(`GET /info: ${r.status}`);
  const info = await r.json();
  const { defaults } = info.model;
  el.model.textContent = `${info.model.name} · ${info.model.family} · ${info.model.kind}`;
  el.steps.value = defaults.steps;
  el.steps.max = info.limits.maxSteps;
  el.guidance.value = defaults.guidanceScale;
  // squares up to the model's size, and the common aspect ratios with the model's size as the short
  // side (any multiple of 8 works: 16:9 at 512 is 912 x 512)
  const sizes = new Map([[`${defaults.width}x${defaults.height}`, '']]);
  const { maxWidth, maxHeight } = info.limits;
  const short = Math.min(defaults.width, defaults.height);
  for (let s = 64; s <= Math.min(maxWidth, maxHeight, short); s *= 2) if (!sizes.has(`${s}x${s}`)) sizes.set(`${s}x${s}`, '');
  for (const [a, b] of [[4, 3], [3, 2], [16, 9], [21, 9]]) {
    const long = Math.round((short * a) / b / 8) * 8;
    if (long <= maxWidth && short <= maxHeight) sizes.set(`${long}x${short}`, ` (${a}:${b})`);
    if (short <= maxWidth && long <= maxHeight) sizes.set(`${short}x${long}`, ` (${b}:${a})`);
  }
  for (const [s, label] of sizes) el.size.add(new Option(`${s.replace('x', ' × ')}${label}`, s));
  el.size.value = `${defaults.width}x${defaults.height}`;
  const nets = info.model.controlnets || [];
  if (nets.length) {
    el.scribbleSet.hidden = false;
    nets.forEach((n, i) => el.controlNet.add(new Option(n, String(i))));
    el.controlNetRow.hidden = nets.length < 2;
    redrawScribble();
  }
}

function redrawScribble(ctx = el.scribble.getContext('2d'), w = el.scribble.width, h = el.scribble.height) {
  ctx.fillStyle = '#000';
  ctx.fillRect(0, 0, w, h);
  ctx.strokeStyle = '#fff';
  ctx.lineCap = 'round';
  ctx.lineJoin = 'round';
  for (const s of strokes) {
    ctx.lineWidth = s.size * (w / el.scribble.width);
    ctx.beginPath();
    s.points.forEach(([x, y], i) => (i ? ctx.lineTo(x * w, y * h) : ctx.moveTo(x * w, y * h)));
    if (s.points.length === 1) ctx.lineTo(s.points[0][0] * w + 0.01, s.points[0][1] * h);
    ctx.stroke();
  }
  el.undo.disabled = el.clearScribble.disabled = strokes.length === 0;
}

/** The drawing at the output size as a PNG data URL, or null when nothing is drawn. */
function scribblePng() {
  if (!strokes.length || el.scribbleSet.hidden) return null;
  const [w, h] = el.size.value.split('x').map(Number);
  const c = document.createElement('canvas');
  c.width = w;
  c.height = h;
  redrawScribble(c.getContext('2d'), w, h);
  return c.toDataURL('image/png');
}

/** While drawing: send at most every SCRIBBLE_MIN_MS (the latest drawing wins on the server). */
function scribbleChanged() {
  const wait = SCRIBBLE_MIN_MS - (performance.now() - lastSent);
  schedule(Math.max(0, wait));
}

function point(ev) {
  const r = el.scribble.getBoundingClientRect();
  return [Math.min(1, Math.max(0, (ev.clientX - r.left) / r.width)), Math.min(1, Math.max(0, (ev.clientY - r.top) / r.height))];
}

function connect() {
  const url = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/ws${key ? `?key=${encodeURIComponent(key)}` : ''}`;
  ws = new WebSocket(url);
  ws.onopen = () => {
    retryMs = 500;
    el.conn.textContent = 'connected';
    el.conn.classList.add('ok');
    schedule(0);
  };
  ws.onclose = () => {
    el.conn.textContent = 'disconnected, retrying…';
    el.conn.classList.remove('ok');
    setTimeout(connect, retryMs);
    retryMs = Math.min(retryMs * 2, 8000);
  };
  ws.onmessage = (ev) => onMessage(JSON.parse(ev.data));
}

function onMessage(msg) {
  if (msg.type === 'image') {
    if (typeof msg.id !== 'number' || msg.id < shown) return;
    shown = msg.id;
    const req = sent.get(msg.id);
    const img = msg.images[0];
    el.output.src = `data:image/png;base64,${img.b64_png}`;
    el.output.classList.toggle('small', img.width < 256);
    el.output.dataset.id = String(msg.id);
    el.output.dataset.prompt = req ? req.prompt : '';
    el.output.dataset.mode = req ? req.mode : '';
    el.output.dataset.strokes = req ? String(req.strokes) : '';
    el.output.dataset.points = req ? String(req.points) : '';
    el.output.hidden = false;
    el.placeholder.hidden = true;
    const roundTrip = req ? performance.now() - req.at : msg.latencyMs;
    el.latency.textContent = `${Math.round(roundTrip)} ms`;
    el.detail.textContent = `(generation ${Math.round(msg.latencyMs)} ms · seed ${msg.seed} · ${img.width}×${img.height}${req && req.mode === 'img2img' ? ' · img2img' : ''})${msg.warnings && msg.warnings.length ? ` — ${msg.warnings.join('; ')}` : ''}`;
    showError('');
    for (const id of sent.keys()) if (id <= msg.id) sent.delete(id);
  } else if (msg.type === 'error') {
    // a full queue: try the latest prompt again shortly
    if (msg.id === seq && msg.error.code === 'ERR_ONESTEP_BUSY') schedule(500);
    else if (msg.id === null || msg.id === seq) showError(`${msg.error.message} [${msg.error.code}]`);
  }
}

function schedule(delay = DEBOUNCE_MS) {
  clearTimeout(timer);
  timer = setTimeout(send, delay);
}

function send() {
  const prompt = el.prompt.value;
  if (!prompt.trim() || !ws || ws.readyState !== WebSocket.OPEN) return;
  const [width, height] = el.size.value.split('x').map(Number);
  const msg = {
    type: 'generate', id: ++seq, prompt, width, height,
    seed: Number(el.seed.value) || 0,
    // img2img with the steps left alone: the server picks enough for the strength (Turbo at 0.5 runs 2)
    ...(sourcePng && !stepsTouched ? {} : { steps: Number(el.steps.value) || 1 }),
    guidanceScale: Number(el.guidance.value) || 0,
  };
  if (el.negative.value) msg.negativePrompt = el.negative.value;
  if (sourcePng) {
    msg.image = sourcePng;
    msg.strength = Number(el.strength.value);
  }
  const control = scribblePng();
  if (control) msg.control = { image: control, index: Number(el.controlNet.value) || 0, scale: Number(el.controlScale.value) };
  lastSent = performance.now();
  sent.set(msg.id, { at: lastSent, prompt, mode: sourcePng ? 'img2img' : 'txt2img', strokes: strokes.length, points: strokes.reduce((n, s) => n + s.points.length, 0) });
  ws.send(JSON.stringify(msg));
}

/** The uploaded image, cropped to fill and scaled to the chosen size, as a PNG data URL. */
function encodeSource() {
  if (!sourceBitmap) return;
  const [w, h] = el.size.value.split('x').map(Number);
  const canvas = document.createElement('canvas');
  canvas.width = w;
  canvas.height = h;
  const scale = Math.max(w / sourceBitmap.width, h / sourceBitmap.height);
  const dw = sourceBitmap.width * scale;
  const dh = sourceBitmap.height * scale;
  canvas.getContext('2d').drawImage(sourceBitmap, (w - dw) / 2, (h - dh) / 2, dw, dh);
  sourcePng = canvas.toDataURL('image/png');
  el.source.src = sourcePng;
  el.source.hidden = false;
  el.clearImage.disabled = false;
}

el.image.addEventListener('change', async () => {
  const file = el.image.files[0];
  if (!file) return;
  try {
    sourceBitmap = await createImageBitmap(file);
    encodeSource();
    schedule(0);
  } catch (e) {
    showError(`cannot read that image: ${e.message}`);
  }
});
el.clearImage.addEventListener('click', () => {
  sourceBitmap = null;
  sourcePng = null;
  el.image.value = '';
  el.source.hidden = true;
  el.clearImage.disabled = true;
  schedule(0);
});
el.size.addEventListener('change', () => {
  encodeSource();
  schedule(0);
});
el.strength.addEventListener('input', () => {
  el.strengthOut.value = el.strength.value;
});
el.reseed.addEventListener('click', () => {
  el.seed.value = Math.floor(Math.random() * 2 ** 32);
  schedule(0);
});
el.steps.addEventListener('input', () => {
  stepsTouched = true;
});
el.scribble.addEventListener('pointerdown', (ev) => {
  ev.preventDefault();
  el.scribble.setPointerCapture(ev.pointerId);
  drawing = { size: Number(el.brush.value), points: [point(ev)] };
  strokes.push(drawing);
  redrawScribble();
  scribbleChanged();
});
el.scribble.addEventListener('pointermove', (ev) => {
  if (!drawing) return;
  drawing.points.push(point(ev));
  redrawScribble();
  scribbleChanged();
});
for (const end of ['pointerup', 'pointercancel']) {
  el.scribble.addEventListener(end, () => {
    if (!drawing) return;
    drawing = null;
    scribbleChanged();
  });
}
el.undo.addEventListener('click', () => {
  strokes.pop();
  redrawScribble();
  schedule(0);
});
el.clearScribble.addEventListener('click', () => {
  strokes.length = 0;
  redrawScribble();
  schedule(0);
});
el.controlScale.addEventListener('input', () => {
  el.controlScaleOut.value = el.controlScale.value;
  schedule();
});
el.controlNet.addEventListener('change', () => schedule(0));
for (const input of [el.prompt, el.negative, el.seed, el.steps, el.guidance, el.strength]) input.addEventListener('input', () => schedule());
el.saveKey.addEventListener('click', () => {
  key = el.apiKey.value;
  sessionStorage.setItem('onestep-key', key);
  location.reload();
});

loadInfo().then(connect, (e) => showError(e.message));
