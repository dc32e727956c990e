// The web app over the server's own API (same origin, plain fetch): no framework, no build step, nothing
// fetched from the network, so it works offline. docs/serving.md documents the endpoints it calls.
"use strict";

const $ = (id) => document.getElementById(id);

// ------------------------------------------------------------------------------------------ helpers
/** The server's one-line refusal ({"detail": "..."}) or the HTTP status when the body is not JSON. */
async function errorLine(response) {
  const text = await response.text();
  try {
    const detail = JSON.parse(text).detail;
    if (typeof detail === "string") return detail;
    if (detail) return JSON.stringify(detail);
  } catch (_) { /* not JSON: fall through */ }
  const plain = text && !text.trimStart().startsWith("<") && !text.includes("\n") ? `: ${text.slice(0, 200)}` : "";
  return `${response.status} ${response.statusText || "error"}${plain}`;
}

function showError(element, message) {
  element.textContent = message;
  element.hidden = !message;
}

function busy(form, spinner, on) {
  for (const control of form.elements) control.disabled = on;
  spinner.hidden = !on;
  if (!on) loadModels(); // re-checks what is loaded (and the voices) and disables what cannot run
}

function seconds(start) {
  return `${((performance.now() - start) / 1000).toFixed(1)} s`;
}

// ------------------------------------------------------------------------------------------- tabs
const tabs = [["tab-speech", "panel-speech"], ["tab-talker", "panel-talker"]];
for (const [tabId] of tabs) {
  $(tabId).addEventListener("click", () => {
    for (const [other, panel] of tabs) {
      $(other).setAttribute("aria-selected", String(other === tabId));
      $(panel).hidden = other !== tabId;
    }
  });
}

// ---------------------------------------------------------------------------------- what is loaded
async function loadModels() {
  try {
    const response = await fetch("v1/models");
    if (!response.ok) throw new Error(await errorLine(response));
    const models = (await response.json()).data || [];
    $("models").textContent = models.length
      ? `loaded: ${models.map((m) => `${m.id} (${m.device}, ${m.dtype})`).join(", ")}` : "no models loaded";
    // a tab whose model is not loaded says so up front instead of failing on submit
    for (const [id, panel] of [["hicodit", "panel-speech"], ["talker", "panel-talker"]]) {
      const missing = !models.some((m) => m.id === id);
      $(panel).querySelector("button[type=submit]").disabled = missing;
      $(panel).querySelector(".unloaded").hidden = !missing;
    }
    fillVoices(models.find((m) => m.voices)?.voices || []);
  } catch (error) {
    $("models").textContent = `models: ${error.message}`;
  }
}

function fillVoices(voices) {
  const select = $("talker-voice"), keep = select.value;
  select.replaceChildren(new Option(voices.length ? "choose a voice" : "none yet: upload a recording", ""));
  for (const name of voices) select.add(new Option(name, name));
  select.value = voices.includes(keep) ? keep : "";
}

// ----------------------------------------------------------------------- tab 1: silent clip -> speech
let exampleBlob = null; // the picked example, fetched once so the preview and the upload share it

async function inputClip() {
  const upload = $("speech-file").files[0];
  if (upload) return upload;
  const example = $("speech-example").value;
  if (!example) return null;
  if (!exampleBlob || exampleBlob.source !== example) {
    const response = await fetch(example);
    if (!response.ok) throw new Error(`example ${example}: ${response.status}`);
    exampleBlob = new File([await response.blob()], example.split("/").pop(), { type: "video/mp4" });
    exampleBlob.source = example;
  }
  return exampleBlob;
}

async function previewClip() {
  try {
    const clip = await inputClip();
    const preview = $("speech-input");
    if (preview.src) URL.revokeObjectURL(preview.src);
    if (clip) {
      preview.src = URL.createObjectURL(clip);
      preview.play().catch(() => {});
    } else {
      preview.removeAttribute("src");
    }
  } catch (error) {
    showError($("speech-error"), error.message);
  }
}
$("speech-file").addEventListener("change", () => { $("speech-example").value = ""; previewClip(); });
$("speech-example").addEventListener("change", () => { $("speech-file").value = ""; previewClip(); });

function showMouths(url) {
  $("speech-mouths").hidden = !url;
  if (url) $("speech-mouth-video").src = url;
}

function showSpeech(url, isVideo) {
  const audio = $("speech-audio"), video = $("speech-video");
  if (audio.src.startsWith("blob:")) URL.revokeObjectURL(audio.src); // the previous result
  // an mp4 result plays in the video element; its audio track also goes to the audio element so that
  // "the result" is always in the same place for a listener (and for the browser test)
  audio.src = url;
  video.hidden = !isVideo;
  if (isVideo) video.src = url;
  $("speech-download").href = url;
  $("speech-download").download = isVideo ? "speech.mp4" : "speech.wav";
  $("speech-result").hidden = false;
}

$("speech-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = event.currentTarget, error = $("speech-error"), start = performance.now();
  showError(error, "");
  let clip;
  try {
    clip = await inputClip();
  } catch (e) {
    showError(error, e.message);
    return;
  }
  if (!clip) {
    showError(error, "choose a clip to upload or an example");
    return;
  }
  const body = new FormData();
  body.append("file", clip, clip.name);
  const steps = $("speech-steps").value;
  if (steps) body.append("steps", steps);
  body.append("format", $("speech-format").value);
  busy(form, $("speech-busy"), true);
  try {
    const response = await fetch("v1/video/speech", { method: "POST", body });
    if (!response.ok) throw new Error(await errorLine(response));
    const type = response.headers.get("content-type") || "";
    showSpeech(URL.createObjectURL(await response.blob()), type.startsWith("video/"));
    showMouths(response.headers.get("x-mouth-crops")); // the server's /v1/files/ link to the crops video
    $("speech-time").textContent = `made in ${seconds(start)}`;
  } catch (e) {
    showError(error, e.message);
  } finally {
    busy(form, $("speech-busy"), false);
  }
});

// ---------------------------------------------------------------------- tab 2: text -> talking head
/** Plays pcm16 chunks back to back as they arrive (Web Audio: each chunk starts where the last ends). */
class PcmPlayer {
  constructor() {
    this.context = new AudioContext(); // made on the click, so the browser lets it play
    this.next = 0;
  }

  push(bytes, sampleRate) {
    const samples = new Int16Array(bytes.buffer, bytes.byteOffset, bytes.byteLength >> 1);
    if (!samples.length) return;
    const buffer = this.context.createBuffer(1, samples.length, sampleRate);
    const channel = buffer.getChannelData(0);
    for (let i = 0; i < samples.length; i++) channel[i] = samples[i] / 32768;
    const source = this.context.createBufferSource();
    source.buffer = buffer;
    source.connect(this.context.destination);
    // a small lead on the first chunk (and after an underrun) so scheduling jitter makes no gap
    this.next = Math.max(this.next, this.context.currentTime + 0.05);
    source.start(this.next);
    this.next += buffer.duration;
  }

  close() {
    if (this.closed) return;
    this.closed = true;
    // let what is scheduled finish, then free the device
    const left = Math.max(0, this.next - this.context.currentTime);
    setTimeout(() => this.context.close().catch(() => {}), left * 1000 + 200);
  }
}

function base64Bytes(text) {
  const binary = atob(text);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return bytes;
}

/** Server-sent events from a fetch body (EventSource cannot POST a form): yields {event, data}. */
async function* serverEvents(response) {
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let pending = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    pending += value.replace(/\r\n?/g, "\n");
    let end;
    while ((end = pending.indexOf("\n\n")) >= 0) {
      const block = pending.slice(0, end);
      pending = pending.slice(end + 2);
      let event = "message";
      const data = [];
      for (const line of block.split("\n")) {
        if (line.startsWith("event:")) event = line.slice(6).trim();
        else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
      }
      if (data.length) yield { event, data: data.join("\n") };
    }
  }
}

function showTalkingHead(url, start) {
  $("talker-video").src = url;
  $("talker-download").href = url;
  $("talker-download").download = "talking_head.mp4";
  $("talker-result").hidden = false;
  $("talker-time").textContent = `made in ${seconds(start)}`;
}

async function talkerForm() {
  const body = new FormData();
  body.append("mode", $("talker-mode").value);
  body.append("text", $("talker-text").value);
  const voiceFile = $("talker-voice-file").files[0];
  const voiceName = $("talker-voice-name").value.trim();
  if (voiceFile && voiceName) { // register it once, then use it by name (and later without the upload)
    const upload = new FormData();
    upload.append("name", voiceName);
    upload.append("file", voiceFile, voiceFile.name);
    const response = await fetch("v1/voices", { method: "POST", body: upload });
    if (!response.ok) throw new Error(await errorLine(response));
    await loadModels();
    $("talker-voice").value = voiceName;
    body.append("voice", voiceName);
  } else if (voiceFile) {
    body.append("voice_file", voiceFile, voiceFile.name);
  } else if ($("talker-voice").value) {
    body.append("voice", $("talker-voice").value);
  }
  const face = $("talker-face").files[0];
  if (face) body.append("face", face, face.name);
  const speech = $("talker-audio").files[0];
  if (speech && $("talker-mode").value === "a2v") body.append("audio", speech, speech.name);
  const prefix = $("talker-prefix").value;
  if (prefix) body.append("prefix_seconds", prefix);
  const prefixText = $("talker-prefix-text").value.trim();
  if (prefix && prefixText) body.append("prefix_text", prefixText);
  return body;
}

async function streamTalkingHead(body, start, player) {
  body.append("stream", "true");
  const response = await fetch("v1/video/talking-head", { method: "POST", body });
  if (!response.ok) throw new Error(await errorLine(response));
  const progress = $("talker-progress"), status = $("talker-status");
  let heard = 0, frames = 0, firstSound = null;
  try {
    for await (const { event, data } of serverEvents(response)) {
      const message = JSON.parse(data);
      if (event === "audio") {
        firstSound ??= seconds(start);
        const bytes = base64Bytes(message.pcm16);
        player.push(bytes, message.sample_rate);
        heard += bytes.byteLength / 2 / message.sample_rate;
        status.textContent = `playing while the video is made: ${heard.toFixed(2)} s of speech, ${frames} frames ` +
          "of motion so far";
      } else if (event === "progress") { // {done, total} steps, where the server can count them
        progress.max = message.total || 1;
        progress.value = message.done || 0;
      } else if (event === "motion") {
        frames += message.frames.length; // the face's motion latents as they are made, drawn by the final render
      } else if (event === "done") {
        progress.max = 1;
        progress.value = 1;
        status.textContent = `${(message.seconds ?? heard).toFixed(2)} s of speech` +
          (firstSound ? `, the first heard after ${firstSound}` : "");
        showTalkingHead(message.url, start);
        return;
      } else if (event === "error") {
        throw new Error(message.detail || data);
      }
    }
    throw new Error("the stream ended before the video was done");
  } finally {
    player.close();
  }
}

$("talker-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = event.currentTarget, error = $("talker-error"), start = performance.now();
  const progress = $("talker-progress"), status = $("talker-status");
  showError(error, "");
  status.textContent = "";
  progress.hidden = false;
  progress.removeAttribute("value"); // indeterminate until the first progress event
  const streams = $("talker-stream").checked && $("talker-mode").value === "t2av"; // only t2av streams
  // the audio output is opened here, in the click itself, before any await: browsers let a page play
  // sound only from a user gesture
  const player = streams ? new PcmPlayer() : null;
  try {
    const body = await talkerForm(); // before the controls are disabled: a disabled form reads no values
    busy(form, $("talker-busy"), true);
    if (streams) {
      await streamTalkingHead(body, start, player);
    } else {
      const response = await fetch("v1/video/talking-head", { method: "POST", body });
      if (!response.ok) throw new Error(await errorLine(response));
      showTalkingHead(URL.createObjectURL(await response.blob()), start);
      progress.value = progress.max;
    }
  } catch (e) {
    showError(error, e.message);
    progress.hidden = true;
    player?.close();
  } finally {
    busy(form, $("talker-busy"), false);
  }
});

loadModels();
previewClip();
