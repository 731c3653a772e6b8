// Cove hub: the "Try it" widgets of a model page. A plain ES module, no build step.
//
// The repo page holds <div id="try-it" data-repo="ns/name" data-task="text-classification"> (see
// templates/partials/try_it.html for every attribute). This module renders a small form for the task, calls
// the hub's inference API with fetch (the HF Inference API `POST /models/{repo}`; chat through the
// OpenAI-style `/models/{repo}/v1/chat/completions`, streamed) and renders the answer.
//
// Every node is built with createElement/textContent: model outputs, card examples and error messages are
// data, never markup.

const DEFAULT_MAX_NEW_TOKENS = 32;

// -- small DOM helpers ---------------------------------------------------------------------------------

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key in node && typeof value !== "string") node[key] = value;
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(typeof child === "string" ? document.createTextNode(child) : child);
  }
  return node;
}

function clear(node) {
  while (node.firstChild) node.removeChild(node.firstChild);
}

function parseJSONAttribute(root, name, fallback) {
  const raw = root.dataset[name];
  if (!raw) return fallback;
  try {
    return JSON.parse(raw);
  } catch {
    return fallback;
  }
}

function formatScore(score) {
  return typeof score === "number" && Number.isFinite(score) ? score.toFixed(3) : String(score);
}

// Python's offsets count code points, JavaScript strings count UTF-16 units: slice by code points.
function codePoints(text) {
  return Array.from(text);
}

function sliceCodePoints(points, start, end) {
  return points.slice(start, end).join("");
}

// -- the API ---------------------------------------------------------------------------------------------

function csrfHeaders() {
  const meta = document.querySelector('meta[name="csrf-token"]');
  const token = meta ? meta.getAttribute("content") : "";
  return token ? { "X-CSRF-Token": token } : {};
}

function modelPath(repo) {
  return "/models/" + repo.split("/").map(encodeURIComponent).join("/");
}

class ApiError extends Error {
  constructor(message, status, errorType) {
    super(message);
    this.status = status;
    this.errorType = errorType;
  }
}

async function errorFrom(response) {
  const text = await response.text();
  let message = text.slice(0, 500) || response.statusText || "request failed";
  let errorType = "";
  try {
    const body = JSON.parse(text);
    if (body && body.error !== undefined) {
      // HF: {"error": "...", "error_type": "..."}; OpenAI: {"error": {"message", "type"}}
      const err = body.error;
      message = typeof err === "string" ? err : err && err.message ? err.message : JSON.stringify(err);
      errorType = body.error_type || (err && err.type) || "";
      if (body.estimated_time) message += ` (loading, about ${Math.ceil(body.estimated_time)} s)`;
    } else if (body && body.detail !== undefined) {
      message = typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail);
    }
  } catch {
    // not JSON: keep the text
  }
  return new ApiError(message, response.status, errorType);
}

async function post(url, body, signal) {
  const response = await fetch(url, {
    method: "POST",
    credentials: "same-origin",
    headers: { "Content-Type": "application/json", Accept: "application/json, text/event-stream", ...csrfHeaders() },
    body: JSON.stringify(body),
    signal,
  });
  if (!response.ok) throw await errorFrom(response);
  return response;
}

// One reader for both streaming protocols: Server-Sent Events whose data lines carry JSON (OpenAI chunks
// ending with `data: [DONE]`, TGI token events without it). onEvent gets each parsed JSON payload.
export async function readEvents(response, onEvent) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  const dispatch = (block) => {
    const data = block
      .split(/\r?\n/)
      .filter((line) => line.startsWith("data:"))
      .map((line) => line.slice(5).replace(/^ /, ""))
      .join("\n");
    if (!data) return true;
    if (data === "[DONE]") return false;
    let payload;
    try {
      payload = JSON.parse(data);
    } catch {
      throw new ApiError(`the stream sent something that is not JSON: ${data.slice(0, 200)}`, 0, "stream");
    }
    if (payload && payload.error !== undefined) {
      const err = payload.error;
      const message = typeof err === "string" ? err : err && err.message ? err.message : JSON.stringify(err);
      throw new ApiError(message, 0, payload.error_type || (err && err.type) || "");
    }
    onEvent(payload);
    return true;
  };
  for (;;) {
    const { value, done } = await reader.read();
    buffer += decoder.decode(value || new Uint8Array(), { stream: !done });
    let cut;
    while ((cut = buffer.search(/\r?\n\r?\n/)) >= 0) {
      const block = buffer.slice(0, cut);
      buffer = buffer.slice(cut).replace(/^\r?\n\r?\n/, "");
      if (!dispatch(block)) {
        await reader.cancel().catch(() => {});
        return;
      }
    }
    if (done) {
      if (buffer.trim()) dispatch(buffer);
      return;
    }
  }
}

// The text one stream event adds: an OpenAI chat chunk, an OpenAI completion chunk or a TGI token event.
function eventText(event) {
  const choice = event.choices && event.choices[0];
  if (choice) {
    if (choice.delta && typeof choice.delta.content === "string") return choice.delta.content;
    if (typeof choice.text === "string") return choice.text;
    return "";
  }
  if (event.token && !event.token.special && typeof event.token.text === "string") return event.token.text;
  return "";
}

function isEventStream(response) {
  return (response.headers.get("content-type") || "").startsWith("text/event-stream");
}

// -- result renderers --------------------------------------------------------------------------------------

function bars(rows) {
  // rows: [{label, score}] -> one bar per row, the widest first as the API orders them
  const list = el("ol", { class: "try-it-bars" });
  for (const row of rows) {
    const width = Math.max(0, Math.min(1, Number(row.score) || 0)) * 100;
    const fill = el("span", { class: "try-it-bar-fill" });
    fill.style.width = `${width.toFixed(1)}%`;
    list.append(
      el(
        "li",
        { class: "try-it-bar" },
        el("span", { class: "try-it-bar-label", text: String(row.label) }),
        el("span", { class: "try-it-bar-track" }, fill),
        el("span", { class: "try-it-bar-score", text: formatScore(row.score) }),
      ),
    );
  }
  return list;
}

function firstList(result) {
  // text-classification answers [[{label, score}]] for one input (a list per input); accept [{...}] too
  return Array.isArray(result) && Array.isArray(result[0]) ? result[0] : result;
}

function asArray(result) {
  return Array.isArray(result) ? result : [result];
}

function highlighted(text, spans) {
  // spans: [{start, end, label, title}] in code points, possibly unsorted or overlapping
  const points = codePoints(text);
  const block = el("p", { class: "try-it-highlighted" });
  let at = 0;
  const sorted = [...spans].filter((s) => Number.isInteger(s.start) && Number.isInteger(s.end));
  sorted.sort((a, b) => a.start - b.start);
  for (const span of sorted) {
    if (span.start < at || span.end <= span.start) continue;
    if (span.start > at) block.append(sliceCodePoints(points, at, span.start));
    const mark = el("mark", { class: "try-it-entity", title: span.title || "" });
    mark.append(sliceCodePoints(points, span.start, span.end));
    if (span.label) mark.append(el("span", { class: "try-it-tag", text: span.label }));
    block.append(mark);
    at = span.end;
  }
  if (at < points.length) block.append(sliceCodePoints(points, at, points.length));
  return block;
}

function generatedTexts(result, key) {
  return asArray(result).map((item) => (item && typeof item === "object" ? item[key] : item));
}

function textOutput(texts) {
  const box = el("div", { class: "try-it-text" });
  for (const text of texts) box.append(el("p", { text: String(text ?? "") }));
  return box;
}

function shapeOf(value) {
  const shape = [];
  let cursor = value;
  while (Array.isArray(cursor)) {
    shape.push(cursor.length);
    cursor = cursor[0];
  }
  return shape;
}

function firstVector(value) {
  let cursor = value;
  while (Array.isArray(cursor) && Array.isArray(cursor[0])) cursor = cursor[0];
  return Array.isArray(cursor) ? cursor : [];
}

// -- the tasks ---------------------------------------------------------------------------------------------
//
// fields: the form (kind text = textarea, line = input, lines = textarea one item per line, labels = comma
// separated, number, checkbox; key = the widget example's key); example: the default example; request:
// values -> {path?, body} (long texts are truncated to the model where the task reads a whole document:
// a widget user pastes an article, not a token count); render: (result, values) -> node. stream: the task renders tokens as they come.

const TEXT = { name: "text", kind: "text", label: "Input", key: "text" };

const TASKS = {
  "text-classification": {
    fields: [TEXT],
    example: { text: "I like you. I love you." },
    request: (v, params) => ({ body: { inputs: v.text, parameters: { top_k: 5, truncation: true, ...params } } }),
    render: (result) => bars(firstList(result).map((r) => ({ label: r.label, score: r.score }))),
  },
  "token-classification": {
    fields: [TEXT],
    example: { text: "My name is Sarah and I live in London, working for Acme Corporation." },
    request: (v, params) => ({
      body: { inputs: v.text, parameters: { aggregation_strategy: "simple", ...params } },
    }),
    render: (result, v) => {
      const entities = asArray(result);
      const box = el("div", { class: "try-it-entities" });
      box.append(
        highlighted(
          v.text,
          entities.map((e) => ({
            start: e.start,
            end: e.end,
            label: e.entity_group || e.entity || "",
            title: `${e.entity_group || e.entity || ""} ${formatScore(e.score)}`,
          })),
        ),
      );
      const table = el("table", { class: "try-it-table" });
      table.append(el("tr", {}, el("th", { text: "entity" }), el("th", { text: "label" }), el("th", { text: "score" })));
      for (const e of entities) {
        table.append(
          el(
            "tr",
            {},
            el("td", { text: String(e.word ?? "") }),
            el("td", {}, el("span", { class: "try-it-tag", text: String(e.entity_group || e.entity || "") })),
            el("td", { text: formatScore(e.score) }),
          ),
        );
      }
      if (!entities.length) box.append(el("p", { class: "muted", text: "No entities found." }));
      else box.append(table);
      return box;
    },
  },
  "question-answering": {
    fields: [
      { name: "question", kind: "line", label: "Question", key: "text" },
      { name: "context", kind: "text", label: "Context", key: "context" },
    ],
    example: { text: "Where do I live?", context: "My name is Sarah and I live in London." },
    request: (v, params) => ({ body: { inputs: { question: v.question, context: v.context }, parameters: params } }),
    render: (result, v) => {
      const answer = asArray(result)[0] || {};
      return el(
        "div",
        { class: "try-it-answer" },
        el(
          "p",
          {},
          el("strong", { class: "try-it-answer-text", text: String(answer.answer ?? "") }),
          " ",
          el("span", { class: "try-it-bar-score", text: formatScore(answer.score) }),
        ),
        highlighted(v.context, [{ start: answer.start, end: answer.end, label: "", title: "answer" }]),
      );
    },
  },
  "fill-mask": {
    fields: [TEXT],
    example: { text: "Paris is the [MASK] of France." },
    request: (v, params) => ({ body: { inputs: v.text, parameters: params } }),
    render: (result) =>
      bars(firstList(result).map((r) => ({ label: r.token_str ?? r.sequence ?? r.token, score: r.score }))),
  },
  "feature-extraction": {
    fields: [TEXT],
    example: { text: "Cove runs offline." },
    request: (v, params) => ({ body: { inputs: v.text, parameters: params } }),
    render: (result) => {
      const shape = shapeOf(result);
      const vector = firstVector(result);
      return el(
        "div",
        { class: "try-it-vector" },
        el("p", {}, "Shape ", el("code", { class: "try-it-shape", text: `[${shape.join(", ")}]` }), ` · ${vector.length} dimensions`),
        el("pre", {
          class: "try-it-values",
          text: `[${vector.slice(0, 8).map((x) => Number(x).toFixed(4)).join(", ")}${vector.length > 8 ? ", …" : ""}]`,
        }),
      );
    },
  },
  "sentence-similarity": {
    fields: [
      { name: "source", kind: "line", label: "Source sentence", key: "source_sentence" },
      { name: "sentences", kind: "lines", label: "Sentences to compare (one per line)", key: "sentences" },
    ],
    example: {
      source_sentence: "A man is playing a guitar.",
      sentences: ["Someone plays an instrument.", "A woman reads a book.", "Stocks fell sharply today."],
    },
    request: (v, params) => ({
      body: { inputs: { source_sentence: v.source, sentences: v.sentences }, parameters: params },
    }),
    render: (result, v) => bars(asArray(result).map((score, i) => ({ label: v.sentences[i] ?? `#${i}`, score }))),
  },
  "zero-shot-classification": {
    fields: [
      TEXT,
      { name: "labels", kind: "labels", label: "Candidate labels (comma separated)", key: "candidate_labels" },
      { name: "multi_label", kind: "checkbox", label: "Several labels can be true", key: "multi_class" },
    ],
    example: { text: "I have a problem with my iphone that needs to be resolved asap!", candidate_labels: "urgent, not urgent, phone, tablet" },
    request: (v, params) => ({
      body: { inputs: v.text, parameters: { candidate_labels: v.labels, multi_label: v.multi_label, ...params } },
    }),
    render: (result) => {
      // the HF Inference API: {sequence, labels, scores}; InferenceClient's newer shape: [{label, score}]
      if (result && Array.isArray(result.labels)) {
        return bars(result.labels.map((label, i) => ({ label, score: result.scores[i] })));
      }
      return bars(firstList(result).map((r) => ({ label: r.label, score: r.score })));
    },
  },
  summarization: {
    fields: [TEXT],
    example: {
      text:
        "The tower is 324 metres tall, about the same height as an 81-storey building, and the tallest structure " +
        "in Paris. Its base is square, measuring 125 metres on each side. During its construction, the Eiffel " +
        "Tower surpassed the Washington Monument to become the tallest man-made structure in the world.",
    },
    request: (v, params) => ({ body: { inputs: v.text, parameters: { truncation: true, ...params } } }),
    render: (result) => textOutput(generatedTexts(result, "summary_text")),
  },
  translation: {
    fields: [TEXT],
    example: { text: "My name is Sarah and I live in London." },
    request: (v, params) => ({ body: { inputs: v.text, parameters: { truncation: true, ...params } } }),
    render: (result) => textOutput(generatedTexts(result, "translation_text")),
  },
  "text2text-generation": {
    fields: [TEXT],
    example: { text: "The quick brown fox jumps over the lazy dog." },
    request: (v, params) => ({ body: { inputs: v.text, parameters: { truncation: true, ...params } } }),
    render: (result) => textOutput(generatedTexts(result, "generated_text")),
  },
  "text-generation": {
    fields: [TEXT, { name: "max_new_tokens", kind: "number", label: "Max new tokens", key: "max_new_tokens" }],
    example: { text: "Once upon a time,", max_new_tokens: DEFAULT_MAX_NEW_TOKENS },
    stream: true,
    // TGI's streaming shape on the model's URL (what InferenceClient.text_generation(stream=True) sends)
    request: (v, params) => ({
      body: { inputs: v.text, parameters: { max_new_tokens: v.max_new_tokens, ...params }, stream: true },
    }),
  },
};
const ALIASES = { "sentiment-analysis": "text-classification", ner: "token-classification" };

const TRANSLATION_PAIR = /^translation_([^_]+)_to_([^_]+)$/;

export function taskSpec(task) {
  const pair = TRANSLATION_PAIR.exec(task || "");
  if (pair) {
    // a card's translation_en_to_de: that pair of the model's, as /pipeline/translation_en_to_de picks it
    const [, src, tgt] = pair;
    return { ...TASKS.translation, request: (v, params) => TASKS.translation.request(v, { src_lang: src, tgt_lang: tgt, ...params }) };
  }
  return TASKS[ALIASES[task] || task];
}

export const SUPPORTED_TASKS = [...Object.keys(TASKS), ...Object.keys(ALIASES), "conversational"];

// -- the widget ------------------------------------------------------------------------------------------

function normaliseExamples(examples) {
  if (!Array.isArray(examples)) return [];
  return examples
    .map((ex) => (typeof ex === "string" ? { text: ex } : ex))
    .filter((ex) => ex && typeof ex === "object" && !Array.isArray(ex));
}

function exampleTitle(example, index) {
  const title = example.example_title ?? example.text ?? example.source_sentence;
  return title ? String(title).slice(0, 60) : `Example ${index + 1}`;
}

class Widget {
  constructor(root) {
    this.root = root;
    this.repo = root.dataset.repo || "";
    this.task = root.dataset.task || "";
    this.revision = root.dataset.revision || "";
    this.maskToken = root.dataset.maskToken || "";
    this.parameters = parseJSONAttribute(root, "parameters", {}) || {};
    this.examples = normaliseExamples(parseJSONAttribute(root, "examples", []));
    this.controller = null;
  }

  url(suffix = "") {
    const base = modelPath(this.repo) + suffix;
    return this.revision ? `${base}?revision=${encodeURIComponent(this.revision)}` : base;
  }

  mount() {
    clear(this.root);
    this.root.classList.add("try-it");
    const chat = this.task === "conversational" || this.root.dataset.chat === "true";
    this.spec = chat ? null : taskSpec(this.task);
    if (!chat && !this.spec) {
      this.root.append(el("p", { class: "muted", text: `No widget for the task ${this.task || "(none)"} yet.` }));
      return;
    }
    if (chat) this.mountChat();
    else this.mountForm();
  }

  // a <select> over the card's examples, filling the form with the chosen one
  exampleChooser(apply) {
    if (this.examples.length < 2) return null;
    const select = el("select", { class: "try-it-examples", "aria-label": "Examples" });
    this.examples.forEach((ex, i) => select.append(el("option", { value: String(i), text: exampleTitle(ex, i) })));
    select.addEventListener("change", () => apply(this.examples[Number(select.value)]));
    return select;
  }

  mountForm() {
    const spec = this.spec;
    const form = el("form", { class: "try-it-form" });
    this.inputs = {};
    for (const field of spec.fields) {
      const id = `try-it-${field.name}`;
      let input;
      if (field.kind === "text" || field.kind === "lines") input = el("textarea", { id, name: field.name, rows: field.kind === "lines" ? 4 : 3 });
      else if (field.kind === "checkbox") input = el("input", { id, name: field.name, type: "checkbox" });
      else if (field.kind === "number") input = el("input", { id, name: field.name, type: "number", min: "1", max: "512" });
      else input = el("input", { id, name: field.name, type: "text" });
      this.inputs[field.name] = input;
      const label = el("label", { for: id, text: field.label });
      form.append(field.kind === "checkbox" ? el("p", { class: "try-it-check" }, input, " ", label) : el("p", {}, label, input));
    }
    this.button = el("button", { type: "submit", class: "primary try-it-compute", text: "Compute" });
    this.stopButton = spec.stream ? el("button", { type: "button", class: "try-it-stop", text: "Stop", hidden: true }) : null;
    const chooser = this.exampleChooser((ex) => this.fill(ex));
    form.append(el("div", { class: "try-it-actions" }, this.button, this.stopButton, chooser));
    this.status = el("p", { class: "try-it-status", role: "status", "aria-live": "polite" });
    this.output = el("div", { class: "try-it-output" });
    this.root.append(form, this.status, this.output);
    this.fill(this.examples[0] || this.defaultExample());
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.run();
    });
    form.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
        event.preventDefault();
        this.run();
      }
    });
    if (this.stopButton) this.stopButton.addEventListener("click", () => this.controller && this.controller.abort());
  }

  defaultExample() {
    const example = { ...this.spec.example };
    if (this.maskToken && typeof example.text === "string") example.text = example.text.replace("[MASK]", this.maskToken);
    return example;
  }

  fill(example) {
    for (const field of this.spec.fields) {
      const input = this.inputs[field.name];
      let value = example[field.key] ?? this.spec.example[field.key];
      if (field.kind === "checkbox") input.checked = Boolean(value);
      else if (field.kind === "lines") input.value = Array.isArray(value) ? value.join("\n") : String(value ?? "");
      else if (field.kind === "labels") input.value = Array.isArray(value) ? value.join(", ") : String(value ?? "");
      else input.value = String(value ?? "");
    }
  }

  values() {
    const values = {};
    for (const field of this.spec.fields) {
      const input = this.inputs[field.name];
      if (field.kind === "checkbox") values[field.name] = input.checked;
      else if (field.kind === "lines") values[field.name] = input.value.split("\n").map((s) => s.trim()).filter(Boolean);
      else if (field.kind === "labels") values[field.name] = input.value.split(",").map((s) => s.trim()).filter(Boolean);
      else if (field.kind === "number") values[field.name] = Number.parseInt(input.value, 10) || DEFAULT_MAX_NEW_TOKENS;
      else values[field.name] = input.value;
    }
    return values;
  }

  busy(on, message = "") {
    this.root.classList.toggle("loading", on);
    this.root.setAttribute("aria-busy", on ? "true" : "false");
    if (on) this.root.dataset.state = "loading";
    if (this.button) {
      this.button.disabled = on;
      this.button.textContent = on ? "Computing…" : this.buttonText || "Compute";
    }
    if (this.stopButton) this.stopButton.hidden = !on;
    this.status.textContent = message;
  }

  // a request that did not complete: stopped by the user (Stop aborts it) or failed
  failed(error) {
    if (error.name === "AbortError") {
      this.root.dataset.state = "done";
      this.busy(false, "Stopped.");
    } else {
      this.busy(false, "");
      this.showError(error);
    }
  }

  showError(error) {
    this.root.dataset.state = "error";
    const kind = error.errorType ? `${error.errorType}: ` : error.status ? `HTTP ${error.status}: ` : "";
    this.output.append(
      el("p", { class: "try-it-error", role: "alert" }, el("strong", { text: "Error " }), `${kind}${error.message}`),
    );
  }

  async run() {
    if (this.controller) return; // one request at a time: Stop ends a stream
    const controller = new AbortController();
    this.controller = controller;
    const values = this.values();
    const { path, body } = this.spec.request(values, this.parameters);
    clear(this.output);
    this.busy(true, "Computing…");
    const started = performance.now();
    try {
      const response = await post(this.url(path || ""), body, controller.signal);
      if (this.spec.stream) await this.renderStream(response, values);
      else this.output.append(this.spec.render(await response.json(), values));
      this.root.dataset.state = "done";
      this.busy(false, `Computed in ${((performance.now() - started) / 1000).toFixed(2)} s`);
    } catch (error) {
      this.failed(error);
    } finally {
      this.controller = null;
    }
  }

  // text-generation: the prompt, then the tokens as they arrive
  async renderStream(response, values) {
    const box = el("p", { class: "try-it-generated" }, el("span", { class: "try-it-prompt", text: values.text }));
    const generated = el("span", { class: "try-it-completion" });
    box.append(generated);
    this.output.append(box);
    if (!isEventStream(response)) {
      // a server that answered in one piece: [{"generated_text"}] (the prompt included, as transformers does)
      const result = asArray(await response.json())[0] || {};
      const text = String(result.generated_text ?? "");
      generated.textContent = text.startsWith(values.text) ? text.slice(values.text.length) : text;
      return;
    }
    let events = 0;
    let final = "";
    await readEvents(response, (event) => {
      events += 1;
      generated.append(eventText(event));
      if (typeof event.generated_text === "string") final = event.generated_text;
      this.output.dataset.events = String(events);
    });
    if (!generated.textContent && final) generated.textContent = final;
  }

  // chat: a conversation streamed from the OpenAI-style route
  mountChat() {
    this.messages = [];
    this.log = el("div", { class: "try-it-chat-log", "aria-live": "polite" });
    const form = el("form", { class: "try-it-form try-it-chat-form" });
    this.input = el("textarea", { id: "try-it-message", name: "message", rows: 2, placeholder: "Your message" });
    this.buttonText = "Send";
    this.button = el("button", { type: "submit", class: "primary try-it-compute", text: "Send" });
    this.stopButton = el("button", { type: "button", class: "try-it-stop", text: "Stop", hidden: true });
    const reset = el("button", { type: "button", class: "try-it-reset", text: "Clear" });
    const chooser = this.exampleChooser((ex) => this.loadConversation(ex));
    form.append(
      el("p", {}, el("label", { for: "try-it-message", text: "Message" }), this.input),
      el("div", { class: "try-it-actions" }, this.button, this.stopButton, reset, chooser),
    );
    this.status = el("p", { class: "try-it-status", role: "status", "aria-live": "polite" });
    this.output = el("div", { class: "try-it-output" });
    this.root.append(this.log, form, this.status, this.output);
    this.loadConversation(this.examples[0] || { messages: [{ role: "user", content: "Hello! Who are you?" }] });
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.send();
    });
    this.input.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && !event.shiftKey) {
        event.preventDefault();
        this.send();
      }
    });
    this.stopButton.addEventListener("click", () => this.controller && this.controller.abort());
    reset.addEventListener("click", () => this.loadConversation({ messages: [] }));
  }

  loadConversation(example) {
    const messages = Array.isArray(example.messages) ? example.messages.filter((m) => m && typeof m.content === "string") : [];
    const last = messages.length && messages[messages.length - 1].role === "user" ? messages.pop() : null;
    this.messages = messages.map((m) => ({ role: String(m.role || "user"), content: m.content }));
    clear(this.log);
    for (const m of this.messages) this.log.append(this.bubble(m.role, m.content));
    this.input.value = last ? last.content : typeof example.text === "string" ? example.text : "";
  }

  bubble(role, content) {
    const text = el("div", { class: "try-it-message-text", text: content });
    return el("div", { class: `try-it-message ${role}` }, el("span", { class: "try-it-role", text: role }), text);
  }

  async send() {
    const content = this.input.value.trim();
    if (!content || this.controller) return;
    const controller = new AbortController();
    this.controller = controller;
    this.messages.push({ role: "user", content });
    this.log.append(this.bubble("user", content));
    this.input.value = "";
    const reply = this.bubble("assistant", "");
    const replyText = reply.querySelector(".try-it-message-text");
    this.log.append(reply);
    clear(this.output);
    this.busy(true, "Generating…");
    const started = performance.now();
    const body = {
      model: this.repo,
      messages: this.messages,
      stream: true,
      max_tokens: DEFAULT_MAX_NEW_TOKENS,
      ...this.parameters,
    };
    try {
      const response = await post(this.url("/v1/chat/completions"), body, controller.signal);
      if (isEventStream(response)) {
        let events = 0;
        await readEvents(response, (event) => {
          events += 1;
          replyText.append(eventText(event));
          this.output.dataset.events = String(events);
        });
      } else {
        const result = await response.json();
        replyText.textContent = result.choices?.[0]?.message?.content ?? "";
      }
      this.root.dataset.state = "done";
      this.busy(false, `Generated in ${((performance.now() - started) / 1000).toFixed(2)} s`);
    } catch (error) {
      this.failed(error);
    } finally {
      if (replyText.textContent) this.messages.push({ role: "assistant", content: replyText.textContent });
      else reply.remove();
      this.controller = null;
    }
  }
}

export function mount(root) {
  const widget = new Widget(root);
  widget.mount();
  root.dataset.ready = "true";
  return widget;
}

for (const root of document.querySelectorAll("#try-it")) mount(root);
