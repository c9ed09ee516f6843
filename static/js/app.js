// aigateway: small progressive enhancements; every page also works without this file.
// Loaded as a file (the CSP allows no inline script or handler attributes).
"use strict";

// Close an open "Generate" menu when clicking elsewhere or pressing Escape.
document.addEventListener("click", (event) => {
  document.querySelectorAll("details[data-menu][open]").forEach((menu) => {
    if (!menu.contains(event.target)) menu.removeAttribute("open");
  });
});
document.addEventListener("keydown", (event) => {
  if (event.key !== "Escape") return;
  document.querySelectorAll("details[data-menu][open]").forEach((menu) => {
    menu.removeAttribute("open");
    menu.querySelector("summary").focus();
  });
});

// Forms that need a second thought: <form data-confirm="Question?">.
document.addEventListener("submit", (event) => {
  const question = event.target.dataset && event.target.dataset.confirm;
  if (question && !window.confirm(question)) event.preventDefault();
});

async function copyText(button, text) {
  const label = button.textContent;
  try {
    await navigator.clipboard.writeText(text);
    button.textContent = "Copied";
  } catch {
    button.textContent = "Press Ctrl+C";
    return false;
  }
  setTimeout(() => { button.textContent = label; }, 2000);
  return true;
}

// Copy buttons: <button data-copy="#selector">, and the ones added to code blocks.
document.addEventListener("click", async (event) => {
  const button = event.target.closest("[data-copy], .copy-code");
  if (!button) return;
  const source = button.classList.contains("copy-code")
    ? button.parentElement.querySelector("pre")
    : document.querySelector(button.dataset.copy);
  if (!source) return;
  if (!(await copyText(button, source.textContent.replace(/\n$/, "")))) {
    const range = document.createRange();
    range.selectNodeContents(source);
    const selection = window.getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
  }
});

// Code blocks in Markdown answers get a copy button (only where JavaScript can copy).
function enhance(root) {
  root.querySelectorAll(".md pre").forEach((pre) => {
    if (pre.parentElement.classList.contains("codeblock")) return;
    const wrapper = document.createElement("div");
    wrapper.className = "codeblock";
    pre.replaceWith(wrapper);
    const button = document.createElement("button");
    button.type = "button";
    button.className = "copy-code";
    button.textContent = "Copy";
    button.setAttribute("aria-label", "Copy code");
    wrapper.append(button, pre);
  });
}

// The HTML given here was rendered and sanitised by the server (generation/markdown.py);
// model text itself is never inserted as HTML.
function insertSanitisedHtml(element, html) {
  element.innerHTML = html;
  enhance(element);
}

// Out of view: its top is above the window or its end is cut off below it (a result that
// starts on screen but ends below the fold, e.g. after the page scrolled to the button).
function isOutOfView(element) {
  const box = element.getBoundingClientRect();
  return box.top < 0 || box.bottom > window.innerHeight;
}

document.addEventListener("htmx:load", (event) => enhance(event.detail.elt));

// After Generate: bring the result into view when it is below the form (phones).
document.addEventListener("htmx:afterSettle", (event) => {
  const swapped = event.target;  // the new content (event.detail.elt may be the replaced form)
  if (!swapped.querySelector) return;
  const result = swapped.matches("[data-scroll-into-view]") ? swapped : swapped.querySelector("[data-scroll-into-view]");
  if (result && isOutOfView(result)) result.scrollIntoView({ behavior: "smooth", block: "start" });
});

function readEvents(buffer, onEvent) {
  let cut;
  while ((cut = buffer.indexOf("\n\n")) >= 0) {
    const block = buffer.slice(0, cut);
    buffer = buffer.slice(cut + 2);
    const name = (block.match(/^event: (.*)$/m) || [])[1];
    const data = (block.match(/^data: (.*)$/m) || [])[1];
    if (name && data) onEvent(name, JSON.parse(data));
  }
  return buffer;
}

// Chat: the answer streams in as sanitised HTML rendered by the server, with a stop button.
function setUpChat(form) {
  const list = document.getElementById("messages");
  const input = form.querySelector("textarea[name=content]");
  const send = form.querySelector("button[type=submit]");
  const stop = document.getElementById("stop");
  let controller = null;

  const nearBottom = () => window.innerHeight + window.scrollY >= document.body.scrollHeight - 120;
  const bubble = (role) => {
    const empty = document.getElementById("chat-empty");
    if (empty) empty.remove();
    const div = document.createElement("div");
    div.className = "bubble " + role;
    const label = document.createElement("span");
    label.className = "visually-hidden";
    label.textContent = role === "user" ? "You:" : "Answer:";
    const body = document.createElement("div");
    body.className = role === "user" ? "plain" : "md";
    div.append(label, body);
    list.appendChild(div);
    return { div, body };
  };
  const note = (answer, text, className) => {
    const p = document.createElement("p");
    p.className = className;
    p.textContent = text;
    answer.div.appendChild(p);
  };
  const refreshSidebar = () => {
    // The sidebar and the heading, re-rendered by the server (title, order, new entry).
    const url = form.dataset.conversationUrl;
    if (url && window.htmx) window.htmx.ajax("GET", url, { target: "#chat-sidebar", swap: "outerHTML" });
  };
  const adopt = (response) => {
    // The first answer of a new chat gives the conversation its own address.
    const url = response.headers.get("X-Conversation-Url");
    if (!url || form.dataset.conversationUrl === url) return;
    form.dataset.conversationUrl = url;
    form.dataset.streamUrl = response.headers.get("X-Conversation-Stream-Url");
    const picker = document.getElementById("chat-model");
    if (picker) picker.remove();
    history.replaceState(null, "", url);
  };

  stop.addEventListener("click", () => controller && controller.abort());
  input.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      form.requestSubmit();
    }
  });

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const content = input.value.trim();
    if (!content || controller) return;
    const body = new FormData(form);
    bubble("user").body.textContent = content;
    input.value = "";
    const answer = bubble("assistant");
    answer.div.setAttribute("data-streaming", "true");
    answer.div.setAttribute("aria-busy", "true");
    answer.div.scrollIntoView({ block: "end" });
    controller = new AbortController();
    send.disabled = true;
    stop.hidden = false;
    try {
      const response = await fetch(form.dataset.streamUrl, {
        method: "POST", body, signal: controller.signal,
        headers: { "X-CSRFToken": body.get("csrfmiddlewaretoken") },
      });
      adopt(response);  // even a failed first answer may have started the conversation
      if (!response.ok) {
        const problem = await response.json().catch(() => null);
        throw new Error((problem && problem.error && problem.error.message) || "The answer could not be started.");
      }
      const reader = response.body.getReader();
      const decoder = new TextDecoder();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        const follow = nearBottom();
        buffer = readEvents(buffer + decoder.decode(value, { stream: true }), (name, data) => {
          if (data.html !== undefined) insertSanitisedHtml(answer.body, data.html);
          if (name === "done") answer.div.dataset.done = "true";
          if (name === "error") note(answer, data.error.message, "error-text");
        });
        if (follow) answer.div.scrollIntoView({ block: "end" });
      }
    } catch (error) {
      if (error.name === "AbortError") {
        answer.div.dataset.stopped = "true";
        answer.div.classList.add("stopped");
        note(answer, "Stopped before the end", "stopped-note");
      } else {
        answer.div.className = "bubble error";
        answer.body.textContent = error.message;
      }
    } finally {
      answer.div.removeAttribute("data-streaming");
      answer.div.removeAttribute("aria-busy");
      controller = null;
      send.disabled = false;
      stop.hidden = true;
      input.focus();
      refreshSidebar();
    }
  });
}

document.addEventListener("DOMContentLoaded", () => {
  enhance(document);
  const form = document.getElementById("chat-form");
  if (form) setUpChat(form);
});
