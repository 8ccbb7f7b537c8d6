/*!
 * iMBrace web widget: a chat with the team behind a WEB_WIDGET channel.
 *
 *   <script src="https://inbox.example.com/widget.js" data-widget-key="wk_…" async></script>
 *
 * One self-contained file, no dependencies, nothing evaluated from strings, no
 * inline styles: it runs under a strict Content-Security-Policy. The host page
 * needs `script-src` and `connect-src` (https and wss) for the inbox's origin, and
 * `img-src` for it to show image attachments inline; nothing for styles, which
 * are constructed stylesheets adopted by the widget's shadow root.
 *
 * Optional attributes on the script tag:
 *   data-identifier, data-identifier-hash  identity verification (hex HMAC-SHA256 of
 *                                          the identifier with the channel's identitySecret)
 *   data-name, data-email                  what the site already knows about the visitor
 *   data-title                             the panel's title ("Chat with us")
 *   data-color                             the accent colour (any CSS colour)
 *
 * Theming from the host page: CSS custom property --imbrace-accent on the
 * <imbrace-widget> element, and ::part() for the parts named below (launcher,
 * panel, header, log, message, composer, input, send, …). Every element a test
 * or a theme needs carries a stable data-imbrace attribute.
 *
 * The server contract is docs/web-widget.md.
 */
(() => {
  "use strict";

  // ---------------------------------------------------------------- configuration

  const script =
    document.currentScript && document.currentScript.dataset && document.currentScript.dataset.widgetKey
      ? document.currentScript
      : document.querySelector("script[data-widget-key]");
  if (!script || !script.dataset.widgetKey) {
    console.warn("iMBrace widget: no <script data-widget-key> found; nothing to show.");
    return;
  }
  const KEY = script.dataset.widgetKey;
  const registry = (window.__imbraceWidgets = window.__imbraceWidgets || {});
  if (registry[KEY]) return; // the same snippet pasted twice
  registry[KEY] = true;

  const SERVER = new URL(script.src, document.baseURI).origin;
  const ENDPOINT = SERVER + "/widget/graphql";
  const SOCKET_URL = ENDPOINT.replace(/^http/, "ws");
  const SESSIONS_URL = SERVER + "/widget/v1/sessions";
  const IDENTITY = {
    identifier: script.dataset.identifier || null,
    identifierHash: script.dataset.identifierHash || null,
    name: script.dataset.name || null,
    email: script.dataset.email || null,
  };
  const TITLE = script.dataset.title || "Chat with us";
  const ACCENT = script.dataset.color || "";

  const HISTORY_PAGE = 30;
  const PING_EVERY_MS = 15000; // our own keep-alive: finds sockets a dropped network left half-open
  const PONG_WITHIN_MS = 8000;
  const ACK_WITHIN_MS = 10000;
  const TYPING_EVERY_MS = 3000; // setTyping(true) at most this often while the visitor types
  const TYPING_IDLE_MS = 4000; // … and setTyping(false) after this long without a key
  const AGENT_TYPING_SHOWN_MS = 7000; // typing counts as over after 6 s without a repeat
  const NO_ANSWER_MS = 120000; // unanswered this long: ask for an email even if the visitor stays

  // Storage: the visitor id and the session (token, expiry) live in localStorage, so a
  // returning visitor keeps their conversation and new tabs don't each start a session
  // (sessions per address are limited); the stream's cursor and the panel's state are
  // per tab (sessionStorage). Both fall back to memory where storage is refused (private
  // modes, sandboxed frames). A signed-in visitor's entries are their own: the scope
  // names the identifier and the start of its hash, so another user on the same browser,
  // or a page that forged the hash, never picks up their session.
  const scope =
    "imbrace:" +
    KEY +
    (IDENTITY.identifier ? ":" + IDENTITY.identifier + ":" + String(IDENTITY.identifierHash).slice(0, 16) : "") +
    ":";
  const memory = {};
  function store(kind) {
    let area = null;
    try {
      area = window[kind];
      area.setItem(scope + "probe", "1");
      area.removeItem(scope + "probe");
    } catch (_) {
      area = null;
    }
    return {
      get(name) {
        try {
          return area ? area.getItem(scope + name) : memory[kind + name] ?? null;
        } catch (_) {
          return memory[kind + name] ?? null;
        }
      },
      set(name, value) {
        memory[kind + name] = value;
        try {
          if (area) value === null ? area.removeItem(scope + name) : area.setItem(scope + name, value);
        } catch (_) {
          /* full or refused: memory has it */
        }
      },
    };
  }
  const local = store("localStorage");
  const tab = store("sessionStorage");

  // ---------------------------------------------------------------- GraphQL documents

  const ATTACHMENT_FIELDS = "url name mimeType size";
  const MESSAGE_FIELDS = `id sender agentName text createdAt status attachments { ${ATTACHMENT_FIELDS} }`;
  const Q_VISITOR = "query Visitor { visitor { visitorId name email conversationId } }";
  const Q_MESSAGES = `query Messages($last: Int, $before: String) {
    messages(last: $last, before: $before) {
      edges { cursor node { ${MESSAGE_FIELDS} } }
      pageInfo { hasPreviousPage startCursor }
      eventCursor
    }
  }`;
  const M_SEND = `mutation Send($input: WidgetSendMessageInput!) {
    sendMessage(input: $input) { message { ${MESSAGE_FIELDS} } errors { code message retryAfterSeconds } }
  }`;
  const M_PROFILE = `mutation Profile($input: UpdateProfileInput!) {
    updateProfile(input: $input) { visitor { name email } errors { code message retryAfterSeconds } }
  }`;
  const M_READ = `mutation Read($input: MarkReadInput!) { markRead(input: $input) { errors { code message } } }`;
  const M_TYPING = `mutation Typing($input: SetTypingInput!) { setTyping(input: $input) { errors { code message } } }`;
  const S_EVENTS = `subscription Events($after: String) {
    widgetEvents(after: $after) { cursor kind typing agentName message { ${MESSAGE_FIELDS} } }
  }`;

  // ---------------------------------------------------------------- styles

  const STYLES = `
:host { all: initial; }
[hidden] { display: none !important; }
* { box-sizing: border-box; }
.root {
  --accent: var(--imbrace-accent, #2f54eb);
  --accent-text: #fff;
  --bg: #fff; --fg: #1d2130; --muted: #646b7d; --line: #e3e6ee; --agent-bg: #f1f3f8; --error: #c92a2a;
  font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
  color: var(--fg);
}
button, input, textarea { font: inherit; color: inherit; }
:focus-visible { outline: 2px solid var(--accent); outline-offset: 2px; }
.launcher {
  position: fixed; right: 20px; bottom: 20px; z-index: 2147483000;
  width: 56px; height: 56px; border-radius: 50%; border: 0; cursor: pointer;
  background: var(--accent); color: var(--accent-text);
  display: flex; align-items: center; justify-content: center;
  box-shadow: 0 6px 20px rgba(20, 30, 60, .25);
}
.launcher svg { width: 26px; height: 26px; }
.launcher[aria-expanded="true"] svg:first-of-type, .launcher[aria-expanded="false"] svg:last-of-type { display: none; }
.badge {
  position: absolute; top: -4px; right: -4px; min-width: 20px; height: 20px; padding: 0 5px;
  border-radius: 10px; background: var(--error); color: #fff; font-size: 12px; line-height: 20px; text-align: center;
}
.panel {
  position: fixed; right: 20px; bottom: 88px; z-index: 2147483000;
  width: 370px; height: min(600px, calc(100vh - 110px));
  display: flex; flex-direction: column; overflow: hidden;
  background: var(--bg); border-radius: 14px; box-shadow: 0 12px 40px rgba(20, 30, 60, .28);
}
.header {
  display: flex; align-items: center; gap: 8px; padding: 12px 12px 10px 16px;
  background: var(--accent); color: var(--accent-text);
}
.header h2 { flex: 1; margin: 0; font-size: 16px; font-weight: 600; }
.status { display: block; font-size: 12px; opacity: .9; margin-top: 1px; }
.status[data-state="error"] { font-weight: 600; }
.titles { flex: 1; min-width: 0; }
.icon-button {
  border: 0; background: transparent; color: inherit; cursor: pointer;
  width: 36px; height: 36px; border-radius: 8px; display: flex; align-items: center; justify-content: center;
}
.icon-button:hover:not(:disabled) { background: rgba(0, 0, 0, .08); }
.icon-button svg { width: 20px; height: 20px; }
.log { flex: 1; overflow-y: auto; padding: 12px 14px; display: flex; flex-direction: column; gap: 6px; }
.older { align-self: center; border: 1px solid var(--line); background: var(--bg); border-radius: 14px; padding: 3px 12px; cursor: pointer; color: var(--muted); }
.empty { margin: auto; color: var(--muted); text-align: center; padding: 0 20px; }
.message { display: flex; flex-direction: column; max-width: 82%; }
.message[data-sender="customer"] { align-self: flex-end; align-items: flex-end; }
.message[data-sender="agent"] { align-self: flex-start; align-items: flex-start; }
.who { font-size: 12px; color: var(--muted); margin: 6px 0 2px 4px; }
.bubble { padding: 8px 12px; border-radius: 16px; white-space: pre-wrap; overflow-wrap: anywhere; }
.message[data-sender="customer"] .bubble { background: var(--accent); color: var(--accent-text); border-bottom-right-radius: 4px; }
.message[data-sender="agent"] .bubble { background: var(--agent-bg); border-bottom-left-radius: 4px; }
.message[data-sender="customer"] .bubble a { color: inherit; }
.message[data-status="pending"] .bubble { opacity: .65; }
.message[data-status="failed"] .bubble { background: #fff; color: var(--error); border: 1px solid var(--error); }
.meta { font-size: 11px; color: var(--muted); margin: 2px 4px 0; display: flex; gap: 6px; align-items: center; }
.ticks { letter-spacing: -3px; padding-right: 3px; }
.ticks[data-status="read"] { color: var(--accent); }
.retry { border: 0; background: none; color: var(--error); text-decoration: underline; cursor: pointer; padding: 0; font-size: 11px; }
.attachment { display: block; margin-top: 4px; }
.attachment img { display: block; max-width: 220px; max-height: 220px; border-radius: 10px; }
.message .bubble.media { padding: 0; background: transparent !important; }
.typing { padding: 0 16px 6px; font-size: 12px; color: var(--muted); min-height: 18px; }
.email { margin: 0 12px 8px; padding: 10px 12px; border: 1px solid var(--line); border-radius: 12px; background: #fafbfd; }
.email p { margin: 0 0 8px; }
.email .row { display: flex; gap: 6px; }
.email input { flex: 1; min-width: 0; padding: 7px 10px; border: 1px solid var(--line); border-radius: 8px; background: #fff; }
.email .save { border: 0; border-radius: 8px; padding: 7px 14px; background: var(--accent); color: var(--accent-text); cursor: pointer; }
.email .dismiss { border: 0; background: none; color: var(--muted); cursor: pointer; padding: 0 4px; }
.email .note { color: var(--error); font-size: 12px; margin: 6px 0 0; }
.email.saved { color: var(--muted); }
.composer { display: flex; align-items: flex-end; gap: 4px; padding: 8px 8px 10px; border-top: 1px solid var(--line); }
.composer .icon-button { color: var(--muted); }
.composer .send { color: var(--accent); }
.composer .send:disabled { color: var(--line); cursor: default; }
.input {
  flex: 1; resize: none; border: 0; outline: 0; padding: 8px 6px; max-height: 120px; min-height: 36px;
  background: transparent; line-height: 20px;
}
.input:focus-visible { outline: 0; }
.composer:focus-within { box-shadow: inset 0 2px 0 var(--accent); }
.visually-hidden { position: absolute; width: 1px; height: 1px; overflow: hidden; clip: rect(0 0 0 0); white-space: nowrap; }
@media (max-width: 480px) {
  .panel { inset: 0; width: 100%; height: 100%; border-radius: 0; }
  .launcher[aria-expanded="true"] { display: none; }
}
@media (prefers-reduced-motion: no-preference) {
  .panel { animation: rise .16s ease-out; }
  @keyframes rise { from { opacity: 0; transform: translateY(8px); } to { opacity: 1; transform: none; } }
}
`;

  /** Styles for the shadow root. A constructed stylesheet (adoptedStyleSheets) is not an
   * inline style, so a host page's `style-src 'self'` allows it, where a <style> element
   * in the shadow root would be refused; the element is only the fallback for browsers
   * without constructable stylesheets. */
  function applyStyles(root) {
    if ("adoptedStyleSheets" in root && typeof CSSStyleSheet === "function") {
      try {
        const sheet = new CSSStyleSheet();
        sheet.replaceSync(STYLES);
        root.adoptedStyleSheets = [sheet];
        return;
      } catch (_) {
        /* constructable stylesheets unsupported: fall through */
      }
    }
    const style = document.createElement("style");
    style.textContent = STYLES;
    root.appendChild(style);
  }

  // ---------------------------------------------------------------- DOM helpers

  /** el("div", {class: "x", text: "…", onclick: fn, "aria-label": "…"}, children): attributes via
   * setAttribute, listeners via addEventListener, text via textContent. Never innerHTML. */
  function el(tag, attrs, children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (name === "text") node.textContent = value;
      else if (name.startsWith("on") && typeof value === "function") node.addEventListener(name.slice(2), value);
      else node.setAttribute(name, value === true ? "" : String(value));
    }
    for (const child of children || []) if (child) node.append(child);
    return node;
  }

  const ICONS = {
    chat: "M4 4h16a2 2 0 0 1 2 2v10a2 2 0 0 1-2 2H9l-5 4v-4a2 2 0 0 1-2-2V6a2 2 0 0 1 2-2z",
    close: "M6 6l12 12M18 6L6 18",
    send: "M3 20l18-8L3 4l2 8-2 8zm2-8h8",
    clip: "M21 11.5l-8.6 8.6a5 5 0 0 1-7.1-7.1l8.6-8.6a3.3 3.3 0 0 1 4.7 4.7l-8.6 8.6a1.7 1.7 0 0 1-2.4-2.4l7.9-7.9",
  };
  function icon(name) {
    const ns = "http://www.w3.org/2000/svg";
    const svg = document.createElementNS(ns, "svg");
    svg.setAttribute("viewBox", "0 0 24 24");
    svg.setAttribute("aria-hidden", "true");
    svg.setAttribute("focusable", "false");
    const path = document.createElementNS(ns, "path");
    path.setAttribute("d", ICONS[name]);
    path.setAttribute("fill", name === "chat" ? "currentColor" : "none");
    path.setAttribute("stroke", "currentColor");
    path.setAttribute("stroke-width", "2");
    path.setAttribute("stroke-linecap", "round");
    path.setAttribute("stroke-linejoin", "round");
    svg.append(path);
    return svg;
  }

  /** Text with http(s) links made clickable; everything else stays text. */
  function richText(text) {
    const fragment = document.createDocumentFragment();
    const pattern = /\bhttps?:\/\/[^\s<>"']+[^\s<>"'.,;:!?)\]]/g;
    let last = 0;
    for (const match of text.matchAll(pattern)) {
      fragment.append(text.slice(last, match.index));
      fragment.append(el("a", { href: match[0], target: "_blank", rel: "noopener noreferrer nofollow", text: match[0] }));
      last = match.index + match[0].length;
    }
    fragment.append(text.slice(last));
    return fragment;
  }

  const clock = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit" });
  function formatSize(bytes) {
    if (!(bytes >= 0)) return "";
    if (bytes < 1024) return bytes + " B";
    if (bytes < 1024 * 1024) return Math.round(bytes / 1024) + " KB";
    return (bytes / 1024 / 1024).toFixed(1) + " MB";
  }
  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

  // ---------------------------------------------------------------- the view

  const host = el("imbrace-widget", { "data-imbrace": "root" });
  if (ACCENT && window.CSS && CSS_supports("color", ACCENT)) host.style.setProperty("--imbrace-accent", ACCENT);
  function CSS_supports(property, value) {
    try {
      return window.CSS.supports(property, value);
    } catch (_) {
      return false;
    }
  }
  const shadow = host.attachShadow({ mode: "open" });
  applyStyles(shadow);

  const ui = {};
  ui.badge = el("span", { class: "badge", "data-imbrace": "badge", "aria-hidden": "true", hidden: true });
  ui.launcher = el(
    "button",
    {
      type: "button",
      class: "launcher",
      part: "launcher",
      "data-imbrace": "launcher",
      "aria-label": "Open chat",
      "aria-expanded": "false",
      "aria-controls": "imbrace-panel",
      onclick: () => (state.open ? closePanel() : openPanel()),
    },
    [icon("chat"), icon("close"), ui.badge],
  );
  ui.status = el("span", {
    class: "status",
    part: "status",
    "data-imbrace": "status",
    "data-state": "idle",
    role: "status",
    "aria-live": "polite",
  });
  ui.close = el(
    "button",
    { type: "button", class: "icon-button", "data-imbrace": "close", "aria-label": "Close chat", onclick: () => closePanel() },
    [icon("close")],
  );
  ui.header = el("div", { class: "header", part: "header" }, [
    el("div", { class: "titles" }, [el("h2", { id: "imbrace-title", text: TITLE }), ui.status]),
    ui.close,
  ]);
  ui.older = el("button", {
    type: "button",
    class: "older",
    "data-imbrace": "older",
    text: "Show earlier messages",
    hidden: true,
    onclick: () => loadOlder(),
  });
  ui.empty = el("p", { class: "empty", "data-imbrace": "empty", text: "Send us a message: we usually answer within minutes." });
  ui.log = el(
    "div",
    {
      class: "log",
      part: "log",
      role: "log",
      "aria-live": "polite",
      "aria-label": "Messages",
      "data-imbrace": "log",
      tabindex: "0",
    },
    [ui.older, ui.empty],
  );
  ui.typing = el("div", { class: "typing", "data-imbrace": "typing", "aria-live": "polite" });
  ui.email = el("div", { "data-imbrace": "email", hidden: true });
  ui.fileInput = el("input", {
    type: "file",
    multiple: true,
    hidden: true,
    "data-imbrace": "file-input",
    tabindex: "-1",
    "aria-hidden": "true",
    onchange: () => {
      const files = Array.from(ui.fileInput.files || []);
      ui.fileInput.value = "";
      if (files.length) send("", files);
    },
  });
  ui.attach = el(
    "button",
    {
      type: "button",
      class: "icon-button",
      part: "attach",
      "data-imbrace": "attach",
      "aria-label": "Attach a file",
      onclick: () => ui.fileInput.click(),
    },
    [icon("clip")],
  );
  ui.inputLabel = el("label", { for: "imbrace-input", class: "visually-hidden", text: "Your message" });
  ui.input = el("textarea", {
    id: "imbrace-input",
    class: "input",
    part: "input",
    rows: "1",
    placeholder: "Write a message…",
    "data-imbrace": "input",
    "aria-label": "Your message",
    enterkeyhint: "send",
    oninput: () => {
      autosize();
      updateSendButton();
      typingInput();
    },
    onkeydown: (event) => {
      // Enter sends, Shift+Enter is a new line; not while an IME is composing a character
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing && event.keyCode !== 229) {
        event.preventDefault();
        submitText();
      }
    },
    onblur: () => typingStopped(),
  });
  ui.send = el(
    "button",
    {
      type: "button",
      class: "icon-button send",
      part: "send",
      "data-imbrace": "send",
      "aria-label": "Send message",
      disabled: true,
      onclick: () => submitText(),
    },
    [icon("send")],
  );
  ui.composer = el("div", { class: "composer", part: "composer" }, [
    ui.attach,
    ui.inputLabel,
    ui.input,
    ui.send,
    ui.fileInput,
  ]);
  ui.panel = el(
    "div",
    {
      id: "imbrace-panel",
      class: "panel",
      part: "panel",
      role: "dialog",
      "aria-modal": "false",
      "aria-labelledby": "imbrace-title",
      "aria-label": TITLE,
      "data-imbrace": "panel",
      hidden: true,
      onkeydown: (event) => {
        if (event.key === "Escape") {
          event.stopPropagation();
          closePanel();
        }
      },
    },
    [ui.header, ui.log, ui.typing, ui.email, ui.composer],
  );
  shadow.append(el("div", { class: "root" }, [ui.panel, ui.launcher]));

  function autosize() {
    // CSSOM writes (element.style) are allowed by style-src; only style attributes aren't
    ui.input.style.height = "auto";
    ui.input.style.height = Math.min(ui.input.scrollHeight, 120) + "px";
  }
  function updateSendButton() {
    ui.send.disabled = !ui.input.value.trim() || state.fatal !== null;
  }

  // ---------------------------------------------------------------- state

  const state = {
    open: tab.get("open") === "1",
    session: null, // {token, visitorId, expiresAt, conversationId}
    starting: null, // the promise of the session being created
    fatal: null, // a reason the widget can't work here (origin, identity, unknown key)
    visitor: null, // {visitorId, name, email, conversationId}
    cursor: tab.get("cursor"), // the last widgetEvents cursor seen: resume point
    messages: new Map(), // id -> {message, node}
    pending: new Map(), // local id -> {text, files, node, realId}
    hasOlder: false,
    olderCursor: null,
    historyLoaded: false,
    unread: 0,
    readUpTo: null, // the agent message we last marked read
    // the email prompt: "" (not asked), "asked", "saved-now" (thanks shown), "saved", "known", "dismissed"
    emailState: tab.get("email") || "",
  };

  // ---------------------------------------------------------------- status line

  function setStatus(kind, text) {
    ui.status.dataset.state = kind;
    ui.status.textContent = text;
    host.dataset.state = kind;
  }
  function showConnected() {
    if (state.fatal) return;
    setStatus("online", "Online");
  }

  // ---------------------------------------------------------------- HTTP

  class WidgetError extends Error {
    constructor(message, code, retryAfterMs) {
      super(message);
      this.code = code;
      this.retryAfterMs = retryAfterMs;
    }
  }

  function retryAfter(response) {
    const seconds = Number(response.headers.get("Retry-After"));
    return Number.isFinite(seconds) && seconds > 0 ? seconds * 1000 : 5000;
  }

  const FATAL = {
    ORIGIN_NOT_ALLOWED: "This chat isn't available on this site.",
    IDENTITY_MISMATCH: "We couldn't verify who you are, so the chat is off.",
    UNKNOWN_WIDGET: "This chat is no longer available.",
  };

  /** POST /widget/v1/sessions: a token for this visitor. Fatal answers (origin, identity,
   * unknown key) stop the widget; rate limits and network errors are retried. */
  const omitted = new Set(); // details the server refused (a page URL it can't take, say): sent no more
  async function createSession() {
    const body = {
      widgetKey: KEY,
      visitorId: local.get("visitorId") || undefined,
      identifier: IDENTITY.identifier || undefined,
      identifierHash: IDENTITY.identifierHash || undefined,
      name: IDENTITY.name || undefined,
      email: IDENTITY.email || undefined,
      pageUrl: location.href.slice(0, 2000),
      timeZone: safe(() => Intl.DateTimeFormat().resolvedOptions().timeZone),
      language: navigator.language || undefined,
    };
    for (const field of omitted) delete body[field];
    let response;
    try {
      response = await fetch(SESSIONS_URL, {
        method: "POST",
        mode: "cors",
        credentials: "omit",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify(body),
      });
    } catch (error) {
      // A network error, or a CORS refusal, which the browser reports the same way. When the
      // server does answer a request the page can't read (no-cors), the network is fine and
      // this page's origin is most likely not one the widget allows.
      const reachable = await fetch(SERVER + "/healthz", { mode: "no-cors", cache: "no-store", credentials: "omit" }).then(
        () => true,
        () => false,
      );
      throw reachable
        ? new WidgetError(FATAL.ORIGIN_NOT_ALLOWED, "ORIGIN_REFUSED")
        : new WidgetError("Can't reach the chat.", "NETWORK");
    }
    const answer = await response.json().catch(() => ({}));
    if (response.status === 201 || response.status === 200) {
      if (answer.visitorId) local.set("visitorId", answer.visitorId);
      const session = {
        token: answer.token,
        visitorId: answer.visitorId,
        expiresAt: answer.expiresAt,
        conversationId: answer.conversationId || null,
      };
      local.set("session", JSON.stringify(session));
      return session;
    }
    if (response.status === 429) throw new WidgetError("Too many attempts.", "RATE_LIMITED", retryAfter(response));
    const code = answer.code || { 401: "IDENTITY_MISMATCH", 403: "ORIGIN_NOT_ALLOWED", 404: "UNKNOWN_WIDGET" }[response.status];
    if (FATAL[code]) throw new WidgetError(FATAL[code], code);
    if (response.status === 400) {
      const field = answer.field;
      if (field === "visitorId") local.set("visitorId", null); // one the server can't read: start afresh
      else if (field === "identifier" || field === "identifierHash") throw new WidgetError(FATAL.IDENTITY_MISMATCH, "IDENTITY_MISMATCH");
      else if (field === "widgetKey" || !(field in body)) throw new WidgetError(FATAL.UNKNOWN_WIDGET, "UNKNOWN_WIDGET");
      else omitted.add(field); // name, email, pageUrl, timeZone, language: optional, so without it
      console.warn("iMBrace widget:", answer.error);
      throw new WidgetError(answer.error || "Invalid session request.", "RETRY", 100);
    }
    throw new WidgetError(answer.error || "The chat is unavailable.", answer.code || "UNAVAILABLE");
  }

  function safe(read) {
    try {
      return read() || undefined;
    } catch (_) {
      return undefined;
    }
  }

  function storedSession() {
    try {
      const session = JSON.parse(local.get("session") || "null");
      if (session && session.token && (!session.expiresAt || Date.parse(session.expiresAt) - Date.now() > 60000))
        return session;
    } catch (_) {
      /* unreadable: make a new one */
    }
    return null;
  }

  /** The session, created (with retries) when there is none yet. */
  function ensureSession() {
    if (state.session) return Promise.resolve(state.session);
    if (state.fatal) return Promise.reject(new WidgetError(state.fatal, "FATAL"));
    if (!state.starting) {
      state.starting = (async () => {
        for (let attempt = 0; ; attempt++) {
          try {
            state.session = storedSession() || (await createSession());
            scheduleRenewal();
            return state.session;
          } catch (error) {
            if (FATAL[error.code]) {
              fail(error.message, error.code);
              throw error;
            }
            // not final (a proxy's error page looks the same), but no reason to insist either
            const refused = error.code === "ORIGIN_REFUSED";
            const wait = error.retryAfterMs || (refused ? Math.max(60000, backoff(attempt + 7)) : backoff(attempt));
            if (refused) host.dataset.error = "ORIGIN_NOT_ALLOWED";
            setStatus(
              "error",
              error.code === "RATE_LIMITED"
                ? `Too many requests, retrying in ${Math.ceil(wait / 1000)} s`
                : refused
                  ? error.message
                  : "Can't reach the chat, retrying…",
            );
            await sleep(wait);
            delete host.dataset.error;
            setStatus("connecting", "Connecting…");
          }
        }
      })().finally(() => {
        state.starting = null;
      });
    }
    return state.starting;
  }

  /** Drops a token the server refused (expired, revoked) and makes a new one. */
  async function renewSession() {
    state.session = null;
    local.set("session", null);
    return ensureSession();
  }

  let renewTimer = null;
  function scheduleRenewal() {
    clearTimeout(renewTimer);
    const expires = state.session && Date.parse(state.session.expiresAt);
    if (!expires) return;
    // a minute before it ends; the socket keeps running, the next (re)connect uses the new token
    const wait = Math.max(expires - Date.now() - 60000, 5000);
    renewTimer = setTimeout(() => renewSession().catch(() => {}), Math.min(wait, 2 ** 31 - 1));
  }

  function fail(message, code) {
    state.fatal = message;
    setStatus("error", message);
    host.dataset.error = code;
    ui.input.disabled = true;
    ui.attach.disabled = true;
    updateSendButton();
    live.stop();
  }

  function isUnauthenticated(errors) {
    return (errors || []).some((e) => e && e.extensions && e.extensions.code === "UNAUTHENTICATED");
  }

  /** One GraphQL operation over HTTP; ``files`` makes it a multipart request
   * (https://github.com/jaydenseric/graphql-multipart-request-spec) with them in
   * ``variables.input.attachments``. A refused token is renewed once. */
  async function graphql(query, variables, files, renewed) {
    const session = await ensureSession();
    const headers = { Authorization: "Bearer " + session.token };
    let body;
    if (files && files.length) {
      const map = {};
      files.forEach((_, index) => (map[index] = [`variables.input.attachments.${index}`]));
      body = new FormData();
      body.append("operations", JSON.stringify({ query, variables }));
      body.append("map", JSON.stringify(map));
      files.forEach((file, index) => body.append(String(index), file, file.name));
    } else {
      headers["Content-Type"] = "application/json";
      body = JSON.stringify({ query, variables });
    }
    let response;
    try {
      response = await fetch(ENDPOINT, { method: "POST", mode: "cors", credentials: "omit", headers, body });
    } catch (_) {
      throw new WidgetError("You're offline.", "NETWORK");
    }
    if (response.status === 429) throw new WidgetError("Too many requests.", "RATE_LIMITED", retryAfter(response));
    if (response.status === 413) throw new WidgetError("That file is too large.", "TOO_LARGE");
    const answer = await response.json().catch(() => null);
    if (!answer) throw new WidgetError("The chat is unavailable.", "UNAVAILABLE");
    if ((response.status === 401 || isUnauthenticated(answer.errors)) && !renewed) {
      await renewSession();
      return graphql(query, variables, files, true);
    }
    if (answer.errors && answer.errors.length) {
      const first = answer.errors[0];
      throw new WidgetError(first.message || "Request failed.", (first.extensions && first.extensions.code) || "ERROR");
    }
    return answer.data;
  }

  /** A mutation's payload, or a WidgetError with its first `errors` entry. */
  async function mutate(query, input, field, files) {
    const data = await graphql(query, { input }, files);
    const payload = data[field];
    const refusal = payload && payload.errors && payload.errors[0];
    if (refusal) throw new WidgetError(refusal.message, refusal.code, (refusal.retryAfterSeconds || 0) * 1000 || undefined);
    return payload;
  }

  // ---------------------------------------------------------------- live: graphql-transport-ws

  function backoff(attempt) {
    // 0.5 s, 1 s, 2 s … 30 s, with jitter so a restarted server isn't hit by every tab at once
    const base = Math.min(30000, 500 * 2 ** attempt);
    return Math.round(base / 2 + (Math.random() * base) / 2);
  }

  /** The subscription `widgetEvents(after: cursor)` over one WebSocket, reconnected with
   * backoff; every (re)subscription resumes after the last event seen, so nothing sent
   * while the network was down is lost (and duplicates are dropped by message id). */
  const live = {
    socket: null,
    attempt: 0,
    timers: {},
    stopped: true, // until the widget starts (a returning visitor, or the panel opened)
    subscribed: false,

    start() {
      this.stopped = false;
      if (!this.socket) this.connect();
    },

    stop() {
      this.stopped = true;
      this.teardown();
    },

    /** Now, not after the backoff (the network came back, the tab became visible). */
    kick() {
      if (this.stopped || this.socket || state.fatal) return;
      clearTimeout(this.timers.retry);
      this.attempt = 0;
      this.connect();
    },

    async connect() {
      clearTimeout(this.timers.retry);
      if (this.stopped || state.fatal) return;
      setStatus("connecting", this.attempt ? "Reconnecting…" : "Connecting…");
      let session;
      try {
        session = await ensureSession();
      } catch (_) {
        return; // fatal: fail() said why
      }
      if (this.stopped || this.socket) return;
      let socket;
      try {
        socket = new WebSocket(SOCKET_URL, "graphql-transport-ws");
      } catch (_) {
        return this.retry();
      }
      this.socket = socket;
      this.subscribed = false;
      socket.addEventListener("open", () => {
        this.send({ type: "connection_init", payload: { token: session.token, pageUrl: location.href.slice(0, 2000) } });
        this.timers.ack = setTimeout(() => socket.close(4408, "Connection initialisation timeout"), ACK_WITHIN_MS);
      });
      socket.addEventListener("message", (event) => this.receive(socket, event.data));
      socket.addEventListener("close", (event) => this.closed(socket, event));
      socket.addEventListener("error", () => {
        /* a close event follows */
      });
    },

    send(message) {
      if (this.socket && this.socket.readyState === WebSocket.OPEN) this.socket.send(JSON.stringify(message));
    },

    /** Accepted: the history first if this tab has none (its eventCursor is where the stream
     * starts, so nothing falls between the two), then the subscription from the cursor. */
    async ready(socket) {
      try {
        if (!state.historyLoaded) await loadHistory(false);
      } catch (error) {
        console.warn("iMBrace widget: history", error.message);
        if (socket === this.socket) socket.close(4000, "history unavailable"); // retried with backoff
        return;
      }
      if (socket !== this.socket) return;
      this.attempt = 0;
      this.subscribe();
      showConnected();
      loadVisitor().catch((error) => console.warn("iMBrace widget: visitor", error.message));
    },

    subscribe() {
      this.opId = String((Number(this.opId) || 0) + 1);
      this.send({ id: this.opId, type: "subscribe", payload: { query: S_EVENTS, variables: { after: state.cursor || null } } });
      this.subscribed = true;
    },

    receive(socket, data) {
      if (socket !== this.socket) return;
      let message;
      try {
        message = JSON.parse(data);
      } catch (_) {
        return;
      }
      this.alive();
      switch (message.type) {
        case "connection_ack":
          clearTimeout(this.timers.ack);
          this.heartbeat();
          this.ready(socket);
          break;
        case "ping":
          this.send({ type: "pong" });
          break;
        case "pong":
          break;
        case "next":
          if (message.id !== this.opId) return;
          if (message.payload && message.payload.errors && message.payload.errors.length) {
            this.refused(message.payload.errors);
          } else if (message.payload && message.payload.data && message.payload.data.widgetEvents) {
            handleEvent(message.payload.data.widgetEvents);
          }
          break;
        case "error":
          if (message.id === this.opId) this.refused(message.payload);
          break;
        case "complete":
          // the server ended the stream (this tab fell too far behind): again, from the cursor
          if (message.id === this.opId) this.timers.resubscribe = setTimeout(() => this.subscribe(), 100);
          break;
      }
    },

    /** The subscription was refused: a cursor too old to resume from loses nothing either,
     * the history is loaded again and the subscription starts from now. */
    refused(errors) {
      const codes = (Array.isArray(errors) ? errors : [errors]).map((e) => e && e.extensions && e.extensions.code);
      if (codes.includes("UNAUTHENTICATED")) {
        renewSession().then(() => this.socket && this.socket.close(4000, "renewing"));
        return;
      }
      console.warn("iMBrace widget: subscription refused", errors);
      if (state.cursor) {
        setCursor(null);
        loadHistory(true).finally(() => this.subscribe());
      } else {
        this.timers.resubscribe = setTimeout(() => this.subscribe(), backoff(this.attempt++));
      }
    },

    /** Our pings: a socket that stopped answering (network gone, laptop slept) is closed
     * here rather than waited on for minutes. */
    heartbeat() {
      clearInterval(this.timers.ping);
      this.timers.ping = setInterval(() => {
        this.send({ type: "ping" });
        clearTimeout(this.timers.pong);
        this.timers.pong = setTimeout(() => this.socket && this.socket.close(4000, "no pong"), PONG_WITHIN_MS);
      }, PING_EVERY_MS);
    },

    alive() {
      clearTimeout(this.timers.pong);
    },

    closed(socket, event) {
      if (socket !== this.socket) return;
      this.teardown();
      if (this.stopped || state.fatal) return;
      if (event.code === 4401 || event.code === 4403) {
        // token refused (expired, revoked): a new session, then reconnect
        renewSession().then(
          () => this.retry(),
          () => {},
        );
        return;
      }
      this.retry();
    },

    retry() {
      if (this.stopped || state.fatal) return;
      const wait = backoff(this.attempt++);
      setStatus("offline", navigator.onLine === false ? "You're offline: waiting for the network…" : "Reconnecting…");
      clearTimeout(this.timers.retry);
      this.timers.retry = setTimeout(() => this.connect(), wait);
    },

    teardown() {
      for (const name of ["ack", "pong", "resubscribe", "retry"]) clearTimeout(this.timers[name]);
      clearInterval(this.timers.ping);
      const socket = this.socket;
      this.socket = null;
      this.subscribed = false;
      if (socket && socket.readyState <= WebSocket.OPEN) {
        try {
          socket.close(1000, "bye");
        } catch (_) {
          /* already closing */
        }
      }
    },
  };

  function setCursor(cursor) {
    state.cursor = cursor;
    tab.set("cursor", cursor);
  }

  async function loadVisitor() {
    const data = await graphql(Q_VISITOR, {});
    state.visitor = data.visitor;
    considerEmail();
  }

  // ---------------------------------------------------------------- messages

  function senderOf(message) {
    return message.sender === "AGENT" ? "agent" : "customer";
  }

  function render(message, node) {
    const sender = senderOf(message);
    // agents' messages: SENT, DELIVERED, READ (by this visitor); the visitor's own: stored ("sent")
    const status = message.status
      ? String(message.status).toLowerCase()
      : sender === "customer" && !String(message.id).startsWith("local-")
        ? "sent"
        : "";
    const attrs = {
      class: "message",
      part: "message",
      "data-imbrace": "message",
      "data-sender": sender,
      "data-id": message.id,
      "data-status": status || null,
    };
    const images = (message.attachments || []).filter((file) => file.url && /^image\//.test(file.mimeType || ""));
    const mediaOnly = !message.text && images.length && images.length === (message.attachments || []).length;
    const bubble = el("div", { class: mediaOnly ? "bubble media" : "bubble" });
    if (message.text) bubble.append(richText(message.text));
    for (const file of message.attachments || []) bubble.append(renderAttachment(file));
    const time = new Date(message.createdAt || Date.now());
    const meta = el("div", { class: "meta" }, [
      el("time", { datetime: time.toISOString(), text: clock.format(time) }),
      ticks(status),
    ]);
    const who =
      sender === "agent" ? el("div", { class: "who", text: message.agentName || "Support" }) : null;
    const fresh = el("div", attrs, [who, bubble, meta]);
    if (node) node.replaceWith(fresh);
    return fresh;
  }

  function ticks(status) {
    // sent ✓, delivered ✓✓, read ✓✓ in the accent colour; spelled out for screen readers
    const label = { sent: "Sent", delivered: "Delivered", read: "Read" }[status];
    if (!label) return null;
    return el("span", {
      class: "ticks",
      "data-imbrace": "ticks",
      "data-status": status,
      title: label,
      "aria-label": label,
      role: "img",
      text: status === "sent" ? "✓" : "✓✓",
    });
  }

  function renderAttachment(file) {
    const url = file.url ? new URL(file.url, SERVER).href : null;
    const name = file.name || "file";
    if (!url) return el("span", { class: "attachment", text: name });
    if (/^image\//.test(file.mimeType || "")) {
      return el("a", { class: "attachment", href: url, target: "_blank", rel: "noopener noreferrer" }, [
        el("img", { src: url, alt: name, loading: "lazy" }),
      ]);
    }
    const size = formatSize(file.size);
    return el("a", {
      class: "attachment",
      href: url,
      target: "_blank",
      rel: "noopener noreferrer",
      "data-imbrace": "attachment",
      text: "📎 " + name + (size ? " (" + size + ")" : ""),
    });
  }

  /** Adds or updates a message, in createdAt order; returns whether it was new. */
  function upsert(message) {
    const known = state.messages.get(message.id);
    if (known) {
      known.message = { ...known.message, ...message };
      known.node = render(known.message, known.node);
      return false;
    }
    // the visitor's own message coming back through the subscription before its
    // sendMessage answered: it takes the place of the pending bubble
    if (message.sender !== "AGENT") {
      for (const [localId, pending] of state.pending) {
        if (!pending.realId && (pending.text || "") === (message.text || "") && pending.files.length === (message.attachments || []).length) {
          pending.realId = message.id;
          state.pending.delete(localId);
          const node = render(message, pending.node);
          state.messages.set(message.id, { message, node });
          return false;
        }
      }
    }
    const node = render(message);
    state.messages.set(message.id, { message, node });
    insertInOrder(node, message);
    ui.empty.hidden = true;
    return true;
  }

  function timeOf(message) {
    return Date.parse(message.createdAt) || 0;
  }

  function insertInOrder(node, message) {
    const at = timeOf(message);
    const stick = nearBottom();
    // walk back from the end: new messages almost always go last
    let before = null;
    for (let child = ui.log.lastElementChild; child; child = child.previousElementSibling) {
      const id = child.dataset && child.dataset.id;
      const entry = id && state.messages.get(id);
      if (!entry || child.dataset.status === "pending" || child.dataset.status === "failed") {
        if (child.dataset.imbrace === "message") {
          before = child; // pending bubbles stay last
          continue;
        }
        break;
      }
      if (timeOf(entry.message) <= at) break;
      before = child;
    }
    ui.log.insertBefore(node, before);
    if (stick) scrollToEnd();
  }

  function nearBottom() {
    return ui.log.scrollHeight - ui.log.scrollTop - ui.log.clientHeight < 80;
  }
  function scrollToEnd() {
    ui.log.scrollTop = ui.log.scrollHeight;
  }

  /** When the visitor's unanswered messages began (ms), or null when the last word is an agent's
   * (or nobody wrote yet). */
  function waitingSince() {
    let since = null;
    const all = [...state.messages.values()].map((entry) => entry.message).sort((a, b) => timeOf(a) - timeOf(b));
    for (const message of all) {
      if (message.sender === "AGENT") since = null;
      else if (since === null) since = timeOf(message);
    }
    if (since === null && state.pending.size) since = Date.now();
    return since;
  }

  async function loadHistory(replace) {
    const data = await graphql(Q_MESSAGES, { last: HISTORY_PAGE, before: null });
    const connection = data.messages;
    if (replace) {
      for (const { node } of state.messages.values()) node.remove();
      state.messages.clear();
    }
    for (const edge of connection.edges || []) upsert(edge.node);
    // a first load starts the stream where this page was read; a tab that has a cursor keeps
    // its own (older) one, and what it replays twice is dropped by message id
    if (!state.cursor && connection.eventCursor) setCursor(connection.eventCursor);
    state.hasOlder = !!(connection.pageInfo && connection.pageInfo.hasPreviousPage);
    state.olderCursor = connection.pageInfo && connection.pageInfo.startCursor;
    ui.older.hidden = !state.hasOlder;
    state.historyLoaded = true;
    if (!state.open) {
      let unread = 0;
      for (const { message } of state.messages.values()) if (message.sender === "AGENT" && message.status !== "READ") unread++;
      setUnread(unread);
    }
    scrollToEnd();
    considerEmail();
    maybeMarkRead();
  }

  async function loadOlder() {
    if (!state.olderCursor) return;
    ui.older.disabled = true;
    const height = ui.log.scrollHeight;
    try {
      const data = await graphql(Q_MESSAGES, { last: HISTORY_PAGE, before: state.olderCursor });
      for (const edge of data.messages.edges || []) upsert(edge.node);
      state.hasOlder = !!data.messages.pageInfo.hasPreviousPage;
      state.olderCursor = data.messages.pageInfo.startCursor;
      ui.older.hidden = !state.hasOlder;
      ui.log.scrollTop += ui.log.scrollHeight - height; // keep what the visitor was reading in place
    } catch (error) {
      setStatus("error", error.message);
    } finally {
      ui.older.disabled = false;
    }
  }

  /** One event of widgetEvents: a message, a delivery update, an agent typing. */
  function handleEvent(event) {
    if (event.cursor) setCursor(event.cursor);
    if ((event.kind === "MESSAGE" || event.kind === "DELIVERY") && event.message) {
      const fresh = upsert(event.message);
      if (fresh && event.message.sender === "AGENT") {
        showAgentTyping(false);
        if (!state.open || document.visibilityState !== "visible") setUnread(state.unread + 1);
      }
      maybeMarkRead();
      considerEmail();
    } else if (event.kind === "TYPING") {
      showAgentTyping(!!event.typing, event.agentName);
    }
  }

  let agentTypingTimer = null;
  function showAgentTyping(typing, name) {
    clearTimeout(agentTypingTimer);
    ui.typing.textContent = typing ? `${name || "Support"} is typing…` : "";
    if (typing) agentTypingTimer = setTimeout(() => showAgentTyping(false), AGENT_TYPING_SHOWN_MS);
  }

  function setUnread(count) {
    state.unread = count;
    ui.badge.hidden = count === 0;
    ui.badge.textContent = count > 9 ? "9+" : String(count);
    ui.launcher.setAttribute(
      "aria-label",
      count ? `Open chat, ${count} unread message${count === 1 ? "" : "s"}` : state.open ? "Close chat" : "Open chat",
    );
  }

  /** markRead up to the newest agent message, when the visitor can see it. */
  let readTimer = null;
  function maybeMarkRead() {
    clearTimeout(readTimer);
    readTimer = setTimeout(() => {
      if (!state.open || document.visibilityState !== "visible" || !state.session) return;
      let newest = null;
      for (const { message } of state.messages.values())
        if (message.sender === "AGENT" && (!newest || timeOf(message) >= timeOf(newest))) newest = message;
      if (!newest || newest.id === state.readUpTo || newest.status === "READ") return;
      state.readUpTo = newest.id;
      mutate(M_READ, { upToMessageId: newest.id }, "markRead").catch((error) => {
        state.readUpTo = null;
        console.warn("iMBrace widget: markRead", error.message);
      });
    }, 250);
  }

  // ---------------------------------------------------------------- sending

  let localIds = 0;

  function submitText() {
    const text = ui.input.value.trim();
    if (!text || state.fatal) return;
    ui.input.value = "";
    autosize();
    updateSendButton();
    typingStopped();
    send(text, []);
    ui.input.focus();
  }

  /** Shows the message at once (pending), then sends it; a failure leaves it with a retry. */
  function send(text, files) {
    const localId = "local-" + ++localIds;
    const draft = {
      id: localId,
      sender: "VISITOR",
      text: text || null,
      createdAt: new Date().toISOString(),
      status: null,
      attachments: files.map((file) => ({ name: file.name, size: file.size, mimeType: file.type })),
    };
    const node = render(draft);
    node.dataset.status = "pending";
    const pending = { text: text || "", files, node, realId: null };
    state.pending.set(localId, pending);
    ui.log.append(node);
    ui.empty.hidden = true;
    scrollToEnd();
    queue(localId, pending);
  }

  // One send at a time, so the server stores the visitor's messages in the order written
  let sending = Promise.resolve();
  function queue(localId, pending) {
    sending = sending.then(() => deliver(localId, pending));
  }

  async function deliver(localId, pending) {
    const input = { text: pending.text || null };
    if (pending.files.length) input.attachments = pending.files.map(() => null);
    try {
      const payload = await mutate(M_SEND, input, "sendMessage", pending.files);
      const message = payload.message;
      state.pending.delete(localId);
      if (state.messages.has(message.id)) {
        // the subscription brought it first: it already replaced this bubble, or shows it
        if (pending.node.isConnected && state.messages.get(message.id).node !== pending.node) pending.node.remove();
        upsert(message);
      } else {
        const node = render(message, pending.node);
        state.messages.set(message.id, { message, node });
      }
      considerEmail();
    } catch (error) {
      if (error.code === "RATE_LIMITED") {
        const wait = error.retryAfterMs || 5000;
        setStatus("error", `Too many messages, sending again in ${Math.ceil(wait / 1000)} s`);
        await sleep(wait);
        showConnected();
        return deliver(localId, pending);
      }
      pending.node.dataset.status = "failed";
      const retry = el("button", {
        type: "button",
        class: "retry",
        "data-imbrace": "retry",
        text: "Not sent: retry",
        title: error.message,
        onclick: () => {
          retry.remove();
          pending.node.dataset.status = "pending";
          queue(localId, pending);
        },
      });
      const meta = pending.node.querySelector(".meta");
      meta.append(retry);
      if (error.code !== "NETWORK") meta.append(el("span", { class: "note", text: error.message }));
    }
  }

  // typing: setTyping(true) while the visitor types (at most every TYPING_EVERY_MS), false when idle
  let typingSentAt = 0;
  let typingTimer = null;
  function typingInput() {
    if (!state.session || state.fatal) return;
    clearTimeout(typingTimer);
    typingTimer = setTimeout(typingStopped, TYPING_IDLE_MS);
    if (!ui.input.value.trim()) return typingStopped();
    if (Date.now() - typingSentAt > TYPING_EVERY_MS) {
      typingSentAt = Date.now();
      mutate(M_TYPING, { typing: true }, "setTyping").catch(() => {});
    }
  }
  function typingStopped() {
    clearTimeout(typingTimer);
    if (!typingSentAt) return;
    typingSentAt = 0;
    mutate(M_TYPING, { typing: false }, "setTyping").catch(() => {});
  }

  // ---------------------------------------------------------------- the email prompt

  /** "We'll reply by email": asked when the visitor wrote, nobody answered yet and they
   * are leaving (tab hidden, page hidden, pointer out through the top of the window), or
   * at once when no agent is online. Shown until they save an email or dismiss it. */
  let noAnswerTimer = null;
  function considerEmail(leaving) {
    clearTimeout(noAnswerTimer);
    if (state.fatal || ["saved", "saved-now", "known", "dismissed"].includes(state.emailState)) return renderEmail();
    if ((state.visitor && state.visitor.email) || IDENTITY.email) return setEmailState("known");
    const since = waitingSince();
    if (since === null) return state.emailState === "asked" ? setEmailState("") : renderEmail(); // answered
    if (state.emailState === "asked") return renderEmail();
    if (leaving) return setEmailState("asked", "leaving");
    // nobody answered for a while: the team is probably away
    const left = since + NO_ANSWER_MS - Date.now();
    if (left <= 0) return setEmailState("asked", "waiting");
    noAnswerTimer = setTimeout(() => considerEmail(false), left);
    renderEmail();
  }

  function setEmailState(value, reason) {
    state.emailState = value;
    if (reason) state.emailReason = reason;
    if (value !== "known") tab.set("email", value);
    renderEmail();
  }

  function renderEmail() {
    const box = ui.email;
    const want = state.emailState === "asked" || state.emailState === "saved-now";
    if (!want) {
      box.hidden = true;
      box.replaceChildren();
      return;
    }
    if (box.dataset.shown === state.emailState) return (box.hidden = false);
    box.dataset.shown = state.emailState;
    box.hidden = false;
    if (state.emailState === "saved-now") {
      box.replaceChildren(
        el("p", { class: "email saved", role: "status", text: `Thanks! We'll reply to ${state.savedEmail} by email.` }),
      );
      return;
    }
    const text =
      state.emailReason === "waiting"
        ? "We seem to be away right now. Leave your email and we'll reply by email."
        : "No one has answered yet. Leave your email and we'll reply by email.";
    const note = el("p", { class: "note", "data-imbrace": "email-error", role: "alert", hidden: true });
    const input = el("input", {
      type: "email",
      id: "imbrace-email",
      required: true,
      autocomplete: "email",
      placeholder: "you@example.com",
      "data-imbrace": "email-input",
      "aria-describedby": "imbrace-email-hint",
    });
    const save = el("button", { type: "submit", class: "save", "data-imbrace": "email-save", text: "Save" });
    const form = el(
      "form",
      {
        class: "email",
        part: "email",
        "data-imbrace": "email-form",
        "aria-label": "Get the reply by email",
        novalidate: true,
        onsubmit: async (event) => {
          event.preventDefault();
          const email = input.value.trim();
          if (!email || !input.checkValidity()) {
            note.textContent = "Please enter a valid email address.";
            note.hidden = false;
            input.focus();
            return;
          }
          save.disabled = true;
          try {
            const payload = await mutate(M_PROFILE, { email }, "updateProfile");
            state.visitor = { ...(state.visitor || {}), email: (payload.visitor && payload.visitor.email) || email };
            state.savedEmail = email;
            setEmailState("saved-now");
            tab.set("email", "saved");
            ui.input.focus();
          } catch (error) {
            note.textContent = error.message;
            note.hidden = false;
            save.disabled = false;
          }
        },
      },
      [
        el("p", { id: "imbrace-email-hint", text }),
        el("label", { for: "imbrace-email", class: "visually-hidden", text: "Your email" }),
        el("div", { class: "row" }, [
          input,
          save,
          el("button", {
            type: "button",
            class: "dismiss",
            "data-imbrace": "email-dismiss",
            "aria-label": "No thanks",
            text: "✕",
            onclick: () => {
              setEmailState("dismissed");
              ui.input.focus();
            },
          }),
        ]),
        note,
      ],
    );
    box.replaceChildren(form);
  }

  function visitorLeaving(openIt) {
    if (!state.session || state.emailState) return;
    considerEmail(true);
    if (openIt && state.emailState === "asked" && !state.open) openPanel();
  }

  // ---------------------------------------------------------------- open / close

  function start() {
    live.start();
  }

  function openPanel() {
    state.open = true;
    tab.set("open", "1");
    ui.panel.hidden = false;
    ui.launcher.setAttribute("aria-expanded", "true");
    setUnread(0);
    ui.launcher.setAttribute("aria-label", "Close chat");
    start();
    scrollToEnd();
    // the input takes the focus, except on touch screens where that would pop the keyboard up
    if (!ui.input.disabled && !matchMedia("(pointer: coarse)").matches) ui.input.focus({ preventScroll: true });
    maybeMarkRead();
  }

  function closePanel() {
    state.open = false;
    tab.set("open", null);
    ui.panel.hidden = true;
    ui.launcher.setAttribute("aria-expanded", "false");
    setUnread(state.unread);
    ui.launcher.focus();
  }

  // ---------------------------------------------------------------- page events

  window.addEventListener("online", () => live.kick());
  window.addEventListener("offline", () => {
    if (!state.fatal && live.socket) setStatus("offline", "You're offline: waiting for the network…");
  });
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "hidden") visitorLeaving(false);
    else {
      live.kick();
      maybeMarkRead();
    }
  });
  window.addEventListener("pagehide", () => visitorLeaving(false));
  // exit intent: the pointer leaves the window through its top edge (towards tabs, address bar)
  document.addEventListener("mouseout", (event) => {
    if (!event.relatedTarget && event.clientY <= 0) visitorLeaving(true);
  });

  function mount() {
    document.body.append(host);
    // A visitor who chatted before (or a signed-in one) connects at once, to see replies and be
    // "online"; a new one only when they open the panel.
    if (local.get("visitorId") || IDENTITY.identifier || state.open) start();
    if (state.open) openPanel();
    considerEmail();
  }
  if (document.body) mount();
  else document.addEventListener("DOMContentLoaded", mount, { once: true });
})();
