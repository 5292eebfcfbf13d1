/*! Bạn An Toàn: chat widget for children and parents (Đồng Nai). Apache-2.0.
 *
 * Embed with one tag (plain JS, no framework, nothing loaded from other hosts):
 *   <script src="https://SERVICE/widget.js" data-audience="child" defer></script>
 * Attributes (all optional):
 *   data-audience  child | parent   pre-selected answer to "who is chatting"
 *   data-exit-url  http(s) URL      neutral page for the quick exit (else the server's)
 *   data-api       URL              the service (else where this file came from)
 *   data-open      "true"           open the panel on load
 *
 * Safety rules of this file: every text from the user or the server is inserted
 * as text (textContent / text nodes), never as HTML; history lives in
 * sessionStorage unless the user ticks "remember"; quick exit (button or Esc)
 * wipes it and replaces the page. "Dữ liệu của em" shows a one-time code once
 * (kept in memory only, never stored) and uses a code to download or delete a
 * conversation (POST /api/v1/privacy/code|export|delete).
 */
(() => {
  "use strict";
  if (window.BanAnToan) return;
  const script = document.currentScript;
  const data = (script && script.dataset) || {};
  const CSS = "__WIDGET_CSS__";

  let apiHref = data.api || "./";
  const base = new URL(apiHref, script ? script.src : location.href);
  if (!base.pathname.endsWith("/")) base.pathname += "/";
  apiHref = base.href;
  const api = (path) => new URL(path, apiHref).href;
  const KEY = "ban-an-toan:" + base.origin;
  const AUDIENCES = ["child", "parent"];
  const defaultAudience = AUDIENCES.includes(data.audience) ? data.audience : "child";
  const CONV_ID = /^[0-9a-f]{32}$/;
  const MAX_KEPT = 100;

  // Texts used until (or if never) the server's config arrives.
  const config = {
    max_message_chars: 2000,
    exit_url: "https://www.google.com.vn/",
    hotline: "111",
    notice: {
      version: "0",
      title: "Trước khi bắt đầu 🔒",
      points: [
        "Mình là máy trả lời tự động, không phải người thật.",
        "Em không cần cho biết tên thật, số điện thoại hay địa chỉ.",
        "Cần rời đi ngay? Bấm Thoát nhanh hoặc phím Esc.",
      ],
    },
    greeting: {
      child: "Chào em! 👋 Em muốn hỏi gì về an toàn trên mạng? Nếu cần gấp, gọi 111 (miễn phí, 24/7).",
      parent: "Xin chào anh/chị! Anh/chị cần hỗ trợ gì? Khi cần gấp, hãy gọi 111 (miễn phí, 24/7).",
    },
    suggestions: { child: [], parent: [] },
    errors: {
      network: "Ôi, mình chưa gửi được tin nhắn 😕 Em bấm “Gửi lại” nhé. Nếu cần gấp, hãy gọi 111.",
      server: "Xin lỗi em, mình đang gặp trục trặc. Em bấm “Gửi lại” sau ít giây nhé. Nếu cần gấp, hãy gọi 111.",
      too_long: "Tin nhắn dài quá rồi. Em chia thành vài tin ngắn hơn nhé.",
    },
    // Full texts come from texts.vi.yaml (privacy:) through the config.
    privacy: {
      title: "Dữ liệu của em",
      intro: "Em có thể xem lại, tải về hoặc xoá cuộc trò chuyện bằng một mã dùng một lần.",
      no_conversation: "Em chưa gửi tin nhắn nào ở đây. Nếu em đã có mã, nhập mã ở dưới.",
      code_intro: "Mã của em (chỉ hiện một lần, dùng được một lần, hết hạn lúc {expires}):",
      how: [],
      bad_code: "Mã gồm 10 chữ và số, ví dụ ABCDE-FGH23.",
      confirm_delete: "Em chắc chắn muốn xoá? Đã xoá thì không lấy lại được.",
      deleted: "Đã xoá cuộc trò chuyện khỏi máy chủ.",
      deleted_here: "Trò chuyện trên máy này cũng đã được xoá.",
      exported: "Cuộc trò chuyện bắt đầu lúc {started}, có {count} tin nhắn.",
      legal_hold: "Cuộc trò chuyện này đang được dùng để bảo vệ em nên chưa xoá được. Gọi 111 (miễn phí) để hỏi thêm.",
    },
  };
  let configLoaded = false;

  const configReady = fetch(api("api/v1/widget/config"), { credentials: "omit", referrerPolicy: "no-referrer" })
    .then((r) => (r.ok ? r.json() : null))
    .then((c) => {
      if (c && typeof c === "object") {
        Object.assign(config, c);
        configLoaded = true;
      }
    })
    .catch(() => {}); // the widget still works with the texts above; chat errors are shown

  // ---- storage: sessionStorage by default, localStorage only if "remember" is ticked
  const storage = (name) => {
    try {
      const s = window[name];
      s.getItem(KEY);
      return s;
    } catch (e) {
      return null; // blocked (private mode, sandbox): keep the conversation in memory only
    }
  };
  const session = storage("sessionStorage");
  const local = storage("localStorage");

  const fresh = () => ({ audience: defaultAudience, conversationId: null, messages: [], started: false, remember: false, open: false, notice: null });
  const state = load() || fresh();

  function load() {
    for (const store of [local, session]) {
      if (!store) continue;
      try {
        const saved = JSON.parse(store.getItem(KEY) || "null");
        if (saved && Array.isArray(saved.messages)) return Object.assign(fresh(), saved);
      } catch (e) {
        store.removeItem(KEY);
      }
    }
    return null;
  }
  function save() {
    state.messages = state.messages.slice(-MAX_KEPT);
    const raw = JSON.stringify(state);
    const [keep, drop] = state.remember ? [local, session] : [session, local];
    try {
      if (drop) drop.removeItem(KEY);
      if (keep) keep.setItem(KEY, raw);
    } catch (e) {
      /* storage full or blocked: the conversation stays on screen only */
    }
  }
  function wipe() {
    for (const store of [session, local]) {
      try {
        if (store) store.removeItem(KEY);
      } catch (e) {
        /* nothing stored there */
      }
    }
  }

  // ---- DOM helpers: text only, never innerHTML
  function el(tag, attrs, children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
      else if (name === "class") node.className = value;
      else node.setAttribute(name, value === true ? "" : String(value));
    }
    for (const child of [].concat(children === undefined ? [] : children)) {
      if (child === null || child === undefined || child === false) continue;
      node.append(typeof child === "string" ? document.createTextNode(child) : child);
    }
    return node;
  }
  const hidden = (text) => el("span", { "aria-hidden": "true", class: "emoji" }, text);
  const SVG = "http://www.w3.org/2000/svg";
  /** The shield logo, drawn with SVG elements (no markup strings, no emoji font needed). */
  function shield(cls) {
    const svg = document.createElementNS(SVG, "svg");
    svg.setAttribute("viewBox", "0 0 64 64");
    svg.setAttribute("aria-hidden", "true");
    svg.setAttribute("focusable", "false");
    svg.setAttribute("class", cls);
    const body = document.createElementNS(SVG, "path");
    body.setAttribute("d", "M32 4 8 13v17c0 15 10 26 24 30 14-4 24-15 24-30V13z");
    body.setAttribute("fill", "#0b5cab");
    const tick = document.createElementNS(SVG, "path");
    tick.setAttribute("d", "m21 32 8 8 15-16");
    tick.setAttribute("fill", "none");
    tick.setAttribute("stroke", "#fff");
    tick.setAttribute("stroke-width", "6");
    tick.setAttribute("stroke-linecap", "round");
    tick.setAttribute("stroke-linejoin", "round");
    svg.append(body, tick);
    return svg;
  }
  const srOnly = (text) => el("span", { class: "sr-only" }, text);
  const chars = (text) => Array.from(text).length;

  /** Text with emergency numbers turned into tel: links, built from text nodes. */
  function withPhoneLinks(text) {
    const parts = String(text).split(/\b(111|113|114|115)\b/);
    return parts.map((part, i) => (i % 2 ? el("a", { href: "tel:" + part }, part) : part)).filter((p) => p !== "");
  }

  function safeHttpUrl(value) {
    try {
      const url = new URL(value, location.href);
      return url.protocol === "https:" || url.protocol === "http:" ? url.href : null;
    } catch (e) {
      return null;
    }
  }
  const exitUrl = () => safeHttpUrl(data.exitUrl) || safeHttpUrl(config.exit_url) || "https://www.google.com.vn/";

  // ---- the widget's elements, inside a Shadow DOM
  const host = document.createElement("div");
  host.setAttribute("data-ban-an-toan", "");
  const shadow = host.attachShadow({ mode: "open" });
  if ("adoptedStyleSheets" in Document.prototype && "replaceSync" in CSSStyleSheet.prototype) {
    const sheet = new CSSStyleSheet();
    sheet.replaceSync(CSS);
    shadow.adoptedStyleSheets = [sheet];
  } else {
    shadow.append(el("style", {}, CSS));
  }

  const launcher = el(
    "button",
    { class: "launcher", type: "button", "aria-expanded": "false", "aria-controls": "bat-panel", onclick: () => open() },
    [hidden("💬"), el("span", {}, "Hỏi Bạn An Toàn")]
  );
  const closeBtn = el("button", { class: "close", type: "button", "aria-label": "Thu nhỏ khung trò chuyện", onclick: () => close() }, "✕");
  const exitBtn = el(
    "button",
    { class: "exit", type: "button", "aria-keyshortcuts": "Escape", onclick: () => quickExit() },
    [hidden("🚪"), "Thoát nhanh", srOnly(" (phím Esc): rời trang ngay và xoá cuộc trò chuyện")]
  );
  const callLink = el("a", { class: "call", href: "tel:111" }, [hidden("📞"), "Gọi 111", srOnly(", Tổng đài bảo vệ trẻ em, miễn phí, 24/7")]);
  const main = el("div", { class: "main" });
  const panel = el("section", { class: "panel", id: "bat-panel", role: "dialog", "aria-labelledby": "bat-title", hidden: true }, [
    el("div", { class: "head" }, [
      el("div", { class: "title-row" }, [
        el("span", { class: "avatar", "aria-hidden": "true" }, shield("logo")),
        el("div", {}, [el("h2", { class: "title", id: "bat-title" }, "Bạn An Toàn"), el("p", { class: "sub" }, "Trợ lý an toàn trên mạng")]),
        closeBtn,
      ]),
      el("div", { class: "safety" }, [callLink, exitBtn]),
    ]),
    main,
  ]);
  shadow.append(el("div", { class: "root", lang: "vi" }, [launcher, panel]));

  // conversation view elements (built once, shown after the audience is chosen)
  const log = el("div", { class: "log", role: "log", "aria-live": "polite", "aria-label": "Cuộc trò chuyện", tabindex: "0" });
  const status = el("div", { class: "sr-only", role: "status" });
  const chips = el("div", { class: "chips", role: "group", "aria-label": "Gợi ý câu hỏi" });
  const note = el("p", { class: "note", role: "alert", hidden: true });
  const input = el("textarea", { id: "bat-input", rows: "2", "aria-describedby": "bat-count", enterkeyhint: "send", autocomplete: "off" });
  const inputLabel = el("label", { for: "bat-input", class: "sr-only" }, "Tin nhắn");
  const count = el("div", { class: "count", id: "bat-count" });
  const sendBtn = el("button", { class: "send", type: "submit" }, ["Gửi", hidden(" ➤")]);
  const remember = el("input", { type: "checkbox", id: "bat-remember", "aria-describedby": "bat-remember-hint" });
  const rememberHint = el("p", { class: "hint", id: "bat-remember-hint", hidden: true });
  const form = el("form", { class: "composer", novalidate: true }, [el("div", { class: "field" }, [inputLabel, input, count]), sendBtn]);
  const privacyBtn = () =>
    el("button", { class: "linkbtn", type: "button", onclick: () => renderPrivacy() }, [hidden("🔒 "), ptext("title")]);
  const opts = el("div", { class: "opts" }, [
    el("label", { class: "remember", for: "bat-remember" }, [remember, "Ghi nhớ trên máy này"]),
    el("button", { class: "linkbtn", type: "button", onclick: () => restart() }, "Trò chuyện mới"),
  ]);
  const optsPrivacy = el("div", { class: "opts-privacy" });
  opts.append(optsPrivacy);
  const chatView = el("div", { class: "main" }, [log, status, chips, note, form, opts, rememberHint]);

  let busy = false;
  let typingRow = null;

  // ---- views
  function renderWelcome() {
    const aud = state.audience;
    const choice = (value, emoji, label) =>
      el("button", { class: "choice" + (value === aud ? " primary" : ""), type: "button", onclick: () => choose(value) }, [hidden(emoji), label]);
    const order = aud === "parent" ? ["parent", "child"] : ["child", "parent"];
    const buttons = { child: choice("child", "🧒", "Em là học sinh"), parent: choice("parent", "👨‍👩‍👧", "Tôi là phụ huynh") };
    main.replaceChildren(
      el("div", { class: "welcome" }, [
        el("p", { class: "hello" }, "Chào em! 👋 Mình là Bạn An Toàn."),
        el("div", { class: "notice", role: "note", "aria-labelledby": "bat-notice" }, [
          el("h3", { id: "bat-notice" }, config.notice.title),
          el("ul", {}, config.notice.points.map((p) => el("li", {}, p))),
        ]),
        el("p", { class: "who", id: "bat-who" }, "Ai đang trò chuyện nhỉ?"),
        el("div", { class: "choices", role: "group", "aria-labelledby": "bat-who" }, order.map((a) => buttons[a])),
        el("p", { class: "small" }, "Bấm chọn là em đã đọc những điều ở trên."),
        el("p", { class: "small" }, privacyBtn()),
      ])
    );
  }

  function renderChat() {
    main.replaceChildren(chatView);
    optsPrivacy.replaceChildren(privacyBtn());
    const max = Number(config.max_message_chars) || 2000;
    input.setAttribute("maxlength", String(max));
    input.placeholder = state.audience === "parent" ? "Anh/chị muốn hỏi gì?" : "Em muốn hỏi gì? Gõ vào đây nhé…";
    inputLabel.textContent = state.audience === "parent" ? "Tin nhắn của anh/chị" : "Tin nhắn của em";
    remember.checked = !!state.remember;
    showRememberHint();
    log.replaceChildren(...state.messages.map(bubble));
    const last = state.messages[state.messages.length - 1];
    setChips(last && last.suggestions && last.suggestions.length ? last.suggestions : config.suggestions[state.audience]);
    updateCount();
    scrollDown();
  }

  function render() {
    if (state.started) renderChat();
    else renderWelcome();
  }

  function bubble(m) {
    if (m.role === "user") {
      return el("div", { class: "row user" }, el("div", { class: "msg" }, [srOnly(state.audience === "parent" ? "Anh/chị: " : "Em: "), String(m.text)]));
    }
    const citeItems = (Array.isArray(m.citations) ? m.citations : [])
      .filter((c) => c && typeof c.id === "string" && /^[a-z0-9-]{1,100}$/.test(c.id) && typeof c.title === "string")
      .map((c) =>
        el(
          "li",
          {},
          el("a", { href: api("kb/" + c.id), target: "_blank", rel: "noopener noreferrer" }, [
            hidden("📖"),
            "Đọc thêm: " + c.title,
            srOnly(" (mở thẻ mới)"),
          ])
        )
      );
    return el("div", { class: "row bot" }, [
      el("span", { class: "avatar-s", "aria-hidden": "true" }, shield("logo")),
      el("div", { class: "msg" }, [
        srOnly("Bạn An Toàn: "),
        ...withPhoneLinks(m.text),
        citeItems.length ? el("ul", { class: "cites", "aria-label": "Bài viết để đọc thêm" }, citeItems) : null,
      ]),
    ]);
  }

  function setChips(list) {
    const items = (Array.isArray(list) ? list : []).filter((s) => typeof s === "string" && s.trim()).slice(0, 4);
    const hadFocus = chips.contains(shadow.activeElement);
    chips.replaceChildren(...items.map((s) => el("button", { class: "chip", type: "button", onclick: () => submit(s) }, s)));
    chips.hidden = items.length === 0;
    if (hadFocus) input.focus(); // keyboard users keep their place when the chips change
  }

  function scrollDown() {
    log.scrollTop = log.scrollHeight;
  }

  function push(message) {
    state.messages.push(message);
    save();
    const row = bubble(message);
    log.append(row);
    scrollDown();
    return row;
  }

  /** Mark (or unmark) a message of the user as not sent, so nothing fails silently. */
  function markUnsent(row, unsent) {
    if (!row) return;
    row.classList.toggle("unsent", unsent);
    const old = row.querySelector(".unsent-label");
    if (old) old.remove();
    if (unsent) row.querySelector(".msg").append(el("span", { class: "unsent-label" }, " · chưa gửi được"));
  }

  function updateCount() {
    const max = Number(config.max_message_chars) || 2000;
    const n = chars(input.value);
    const left = max - n;
    count.textContent = left <= max * 0.1 ? `${n}/${max} ký tự, còn ${Math.max(left, 0)}` : `${n}/${max} ký tự`;
    count.classList.toggle("warn", left <= max * 0.1);
  }

  function showNote(text) {
    note.textContent = text;
    note.hidden = !text;
  }

  function setBusy(on) {
    busy = on;
    sendBtn.setAttribute("aria-disabled", on ? "true" : "false");
    log.setAttribute("aria-busy", on ? "true" : "false");
    if (on) {
      typingRow = el("div", { class: "row bot typing", "aria-hidden": "true" }, [
        el("span", { class: "avatar-s" }, shield("logo")),
        el("div", { class: "msg" }, [el("span", { class: "dot" }), el("span", { class: "dot" }), el("span", { class: "dot" })]),
      ]);
      log.append(typingRow);
      status.textContent = "Bạn An Toàn đang trả lời…";
      scrollDown();
    } else {
      if (typingRow) typingRow.remove();
      typingRow = null;
      status.textContent = "";
    }
  }

  function showError(text, again) {
    const retry = again
      ? el("button", { class: "retry", type: "button", onclick: (e) => { e.currentTarget.closest(".row").remove(); again(); } }, [hidden("🔄"), " Gửi lại"])
      : null;
    const row = el("div", { class: "row bot error", role: "alert" }, [
      el("span", { class: "avatar-s", "aria-hidden": "true" }, shield("logo")),
      el("div", { class: "msg" }, [...withPhoneLinks(text), retry ? el("div", {}, retry) : null]),
    ]);
    log.append(row);
    scrollDown();
  }

  // ---- sending
  function submit(raw) {
    if (busy) return;
    const text = String(raw).normalize("NFC").trim();
    if (!text) return;
    if (chars(text) > (Number(config.max_message_chars) || 2000)) {
      showNote(config.errors.too_long);
      return;
    }
    showNote("");
    input.value = "";
    updateCount();
    deliver(text, push({ role: "user", text }));
  }

  async function deliver(text, row) {
    if (busy) return;
    for (const stale of log.querySelectorAll(".row.error")) stale.remove();
    setBusy(true);
    let failure = null; // [message, retryable]
    try {
      for (let attempt = 0; attempt < 2; attempt += 1) {
        const controller = new AbortController();
        const timer = setTimeout(() => controller.abort(), 30000);
        let res;
        try {
          res = await fetch(api("api/v1/chat"), {
            method: "POST",
            headers: { "content-type": "application/json" },
            // The notice the user saw before the first message is recorded with it (consent).
            body: JSON.stringify({
              conversation_id: state.conversationId || undefined, text, audience: state.audience, channel: "web",
              consent: state.conversationId ? undefined : { notice_version: state.notice || String(config.notice.version) },
            }),
            credentials: "omit",
            referrerPolicy: "no-referrer",
            signal: controller.signal,
          });
        } finally {
          clearTimeout(timer);
        }
        let body = null;
        try {
          body = await res.json();
        } catch (e) {
          body = null;
        }
        if (res.ok && body && body.reply && typeof body.reply.text === "string") {
          if (typeof body.conversation_id === "string" && CONV_ID.test(body.conversation_id)) state.conversationId = body.conversation_id;
          const suggestions = Array.isArray(body.reply.suggestions) ? body.reply.suggestions : [];
          markUnsent(row, false);
          push({ role: "bot", text: body.reply.text, citations: body.reply.citations, suggestions });
          setChips(suggestions.length ? suggestions : config.suggestions[state.audience]);
          return;
        }
        const err = body && body.error && typeof body.error.message === "string" ? body.error : null;
        if (res.status === 404 && state.conversationId && attempt === 0) {
          state.conversationId = null; // the conversation is gone on the server: start a new one
          continue;
        }
        if (res.status >= 500 || !err) failure = [config.errors.server, true];
        else failure = [err.message, res.status === 429 || res.status === 503];
        break;
      }
    } catch (e) {
      failure = [config.errors.network, true];
    } finally {
      setBusy(false);
    }
    markUnsent(row, !!failure);
    if (failure) showError(failure[0], failure[1] ? () => deliver(text, row) : null);
  }

  // ---- "Dữ liệu của em": a one-time code, then download or delete with it
  const ptext = (key) => {
    const texts = config.privacy && typeof config.privacy === "object" ? config.privacy : {};
    return typeof texts[key] === "string" || Array.isArray(texts[key]) ? texts[key] : "";
  };
  const fill = (template, values) => String(template).replace(/\{(\w+)\}/g, (m, k) => (k in values ? String(values[k]) : m));
  const CODE = /^[0-9A-Z]{5}-?[0-9A-Z]{5}$/;
  const localTime = (iso) => {
    const d = new Date(iso);
    return isNaN(d) ? "" : d.toLocaleString("vi-VN", { hour: "2-digit", minute: "2-digit", day: "2-digit", month: "2-digit", year: "numeric" });
  };
  let issued = null; // {code, conversationId}: in memory only, shown once
  let downloadUrl = null;

  async function privacyCall(path, body) {
    try {
      const res = await fetch(api("api/v1/privacy/" + path), {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(body),
        credentials: "omit",
        referrerPolicy: "no-referrer",
      });
      let data = null;
      try {
        data = await res.json();
      } catch (e) {
        data = null;
      }
      const err = data && data.error && typeof data.error.message === "string" ? data.error : null;
      return { ok: res.ok, status: res.status, data, message: err ? err.message : config.errors.server };
    } catch (e) {
      return { ok: false, status: 0, data: null, message: config.errors.network };
    }
  }

  function renderPrivacy() {
    let busy = false;
    const alertBox = el("div", { class: "alert", role: "alert", hidden: true });
    const out = el("div", { class: "pv-out", role: "status" });
    const codeBox = el("div", { class: "codebox", hidden: true });
    const codeInput = el("input", {
      id: "bat-code", class: "code-input", type: "text", maxlength: "16", autocomplete: "off",
      autocapitalize: "characters", spellcheck: "false", "aria-describedby": "bat-code-hint",
    });
    const confirmBox = el("div", { class: "confirm", hidden: true });
    const showAlert = (text) => {
      alertBox.replaceChildren(...withPhoneLinks(text));
      alertBox.hidden = !text;
    };
    const guard = async (button, work) => {
      if (busy) return;
      busy = true;
      button.setAttribute("aria-disabled", "true");
      showAlert("");
      try {
        await work();
      } finally {
        busy = false;
        button.setAttribute("aria-disabled", "false");
      }
    };
    const typedCode = () => {
      const code = codeInput.value.toUpperCase().replace(/\s+/g, "");
      if (CODE.test(code)) return code;
      showAlert(ptext("bad_code"));
      codeInput.focus();
      return null;
    };

    const getBtn = el("button", { class: "btn primary", type: "button" }, [hidden("🔑 "), "Lấy mã dùng một lần"]);
    getBtn.addEventListener("click", () =>
      guard(getBtn, async () => {
        const conversationId = state.conversationId;
        const r = await privacyCall("code", { conversation_id: conversationId });
        if (!r.ok || !r.data || typeof r.data.code !== "string") {
          showAlert(r.message);
          return;
        }
        issued = { code: r.data.code, conversationId };
        const how = ptext("how");
        codeBox.replaceChildren(
          el("p", {}, fill(ptext("code_intro"), { expires: localTime(r.data.expires_at) })),
          el("strong", { class: "code", id: "bat-issued-code" }, r.data.code),
          Array.isArray(how) && how.length ? el("ul", {}, how.map((h) => el("li", {}, String(h)))) : null
        );
        codeBox.hidden = false;
        codeInput.value = r.data.code;
        getBtn.lastChild.textContent = "Lấy mã mới";
        out.replaceChildren(srOnly("Đã có mã, hết hạn lúc " + localTime(r.data.expires_at)));
      })
    );

    const exportBtn = el("button", { class: "btn", type: "button" }, [hidden("📄 "), "Xem và tải về"]);
    exportBtn.addEventListener("click", () => {
      const code = typedCode();
      if (!code) return;
      guard(exportBtn, async () => {
        const r = await privacyCall("export", { code });
        if (!r.ok || !r.data || !Array.isArray(r.data.messages)) {
          showAlert(r.message);
          return;
        }
        if (downloadUrl) URL.revokeObjectURL(downloadUrl);
        downloadUrl = URL.createObjectURL(new Blob([JSON.stringify(r.data, null, 2)], { type: "application/json" }));
        const label = (role) => (role === "user" ? (r.data.audience === "parent" ? "Anh/chị" : "Em") : role === "counselor" ? "Tư vấn viên" : "Bạn An Toàn");
        out.replaceChildren(
          el("p", {}, fill(ptext("exported"), { started: localTime(r.data.created_at), count: r.data.messages.length })),
          el("a", { class: "btn primary", href: downloadUrl, download: "ban-an-toan-du-lieu.json" }, [hidden("💾 "), "Tải tệp về máy"]),
          el("details", {}, [
            el("summary", {}, "Xem nội dung"),
            el("ol", { class: "pv-list" }, r.data.messages.map((m) => el("li", {}, [el("strong", {}, label(m.role) + ": "), String(m.text)]))),
          ])
        );
      });
    });

    const deleteBtn = el("button", { class: "btn danger", type: "button" }, [hidden("🗑️ "), "Xoá cuộc trò chuyện"]);
    deleteBtn.addEventListener("click", () => {
      const code = typedCode();
      if (!code) return;
      const keep = el("button", { class: "btn", type: "button", onclick: () => { confirmBox.hidden = true; deleteBtn.focus(); } }, "Thôi, giữ lại");
      const sure = el("button", { class: "btn danger primary", type: "button" }, "Xoá hẳn");
      sure.addEventListener("click", () =>
        guard(sure, async () => {
          const r = await privacyCall("delete", { code });
          confirmBox.hidden = true;
          if (r.status === 409) {
            showAlert(ptext("legal_hold") || r.message);
            return;
          }
          if (!r.ok) {
            showAlert(r.message);
            return;
          }
          const here = issued && issued.code.replace("-", "") === code.replace("-", "") && issued.conversationId === state.conversationId;
          issued = null;
          codeBox.hidden = true;
          codeInput.value = "";
          if (here) {
            wipe();
            Object.assign(state, fresh(), { open: true });
            save();
            optsPrivacy.replaceChildren();
          }
          out.replaceChildren(el("p", { class: "ok" }, [ptext("deleted"), here ? " " + ptext("deleted_here") : ""]));
          getSection.replaceChildren(el("p", {}, ptext("no_conversation")));
        })
      );
      confirmBox.replaceChildren(el("p", {}, ptext("confirm_delete")), el("div", { class: "actions" }, [sure, keep]));
      confirmBox.hidden = false;
      keep.focus();
    });

    const getSection = el("div", {}, state.conversationId ? getBtn : el("p", {}, ptext("no_conversation")));
    const back = el("button", { class: "linkbtn back", type: "button", onclick: () => { render(); focusFirst(); } }, [hidden("← "), "Quay lại"]);
    const title = el("h3", { id: "bat-pv-title", tabindex: "-1" }, [hidden("🔒 "), ptext("title")]);
    main.replaceChildren(
      el("div", { class: "privacy", role: "region", "aria-labelledby": "bat-pv-title" }, [
        back,
        title,
        el("p", {}, ptext("intro")),
        getSection,
        codeBox,
        el("h4", {}, "Dùng mã"),
        el("label", { for: "bat-code", class: "pv-label" }, "Nhập mã"),
        codeInput,
        el("p", { class: "small", id: "bat-code-hint" }, ptext("bad_code")),
        el("div", { class: "actions" }, [exportBtn, deleteBtn]),
        confirmBox,
        alertBox,
        out,
      ])
    );
    title.focus();
  }

  // ---- actions
  function choose(audience) {
    state.audience = AUDIENCES.includes(audience) ? audience : "child";
    state.started = true;
    state.notice = String(config.notice.version);
    state.messages = [{ role: "bot", text: config.greeting[state.audience] || "" }];
    save();
    renderChat();
    input.focus();
  }

  function restart() {
    const remembered = state.remember;
    Object.assign(state, fresh(), { open: true, remember: remembered });
    save();
    renderWelcome();
    focusFirst();
  }

  function focusFirst() {
    const target = state.started ? input : main.querySelector(".choice");
    if (target) target.focus();
  }

  async function open(focus = true) {
    panel.hidden = false;
    launcher.hidden = true;
    launcher.setAttribute("aria-expanded", "true");
    state.open = true;
    save();
    if (!configLoaded) {
      main.replaceChildren(el("p", { class: "small loading" }, "Đang mở…"));
      await Promise.race([configReady, new Promise((r) => setTimeout(r, 4000))]);
    }
    render();
    if (focus) focusFirst();
  }

  function close() {
    panel.hidden = true;
    launcher.hidden = false;
    launcher.setAttribute("aria-expanded", "false");
    state.open = false;
    save();
    launcher.focus();
  }

  function quickExit() {
    wipe();
    state.messages = [];
    state.conversationId = null;
    host.remove();
    document.documentElement.style.visibility = "hidden";
    location.replace(exitUrl());
  }

  form.addEventListener("submit", (e) => {
    e.preventDefault();
    submit(input.value);
  });
  input.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      submit(input.value);
    }
  });
  input.addEventListener("input", () => {
    updateCount();
    if (!note.hidden) showNote("");
  });
  remember.addEventListener("change", () => {
    state.remember = remember.checked;
    save();
    showRememberHint();
  });
  function showRememberHint() {
    rememberHint.hidden = !state.remember;
    rememberHint.textContent =
      state.audience === "parent"
        ? "Cuộc trò chuyện sẽ được giữ trên máy này sau khi đóng trang."
        : "Trò chuyện sẽ còn trên máy này sau khi đóng trang. Chỉ nên chọn nếu đây là máy của riêng em.";
  }
  document.addEventListener(
    "keydown",
    (e) => {
      if (e.key === "Escape" && !e.isComposing && !panel.hidden) {
        e.preventDefault();
        quickExit();
      }
    },
    true
  );

  function mount() {
    document.body.append(host);
    if (state.open || data.open === "true") open(false);
  }
  if (document.body) mount();
  else document.addEventListener("DOMContentLoaded", mount, { once: true });

  window.BanAnToan = { open, close, quickExit };
})();
