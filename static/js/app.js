// aigateway: small progressive enhancements; every page also works without this file.
"use strict";

// Close an open "Generate" menu when clicking elsewhere.
document.addEventListener("click", (event) => {
  document.querySelectorAll("details[data-menu][open]").forEach((menu) => {
    if (!menu.contains(event.target)) menu.removeAttribute("open");
  });
});

// Copy buttons: <button data-copy="#selector">.
document.addEventListener("click", async (event) => {
  const button = event.target.closest("[data-copy]");
  if (!button) return;
  const source = document.querySelector(button.dataset.copy);
  if (!source) return;
  try {
    await navigator.clipboard.writeText(source.textContent.trim());
    button.textContent = "Copied";
  } catch {
    const range = document.createRange();
    range.selectNodeContents(source);
    const selection = window.getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
    button.textContent = "Selected: press Ctrl+C";
  }
});

// Chat: stream the answer token by token over Server-Sent Events, with a stop button.
function setUpChat(form) {
  const list = document.getElementById("messages");
  const input = form.querySelector("textarea[name=content]");
  const send = form.querySelector("button[type=submit]");
  const stop = document.getElementById("stop");
  let controller = null;

  const bubble = (role, text) => {
    const div = document.createElement("div");
    div.className = "bubble " + role;
    div.textContent = text;
    list.appendChild(div);
    div.scrollIntoView({ block: "end" });
    return div;
  };

  const finish = () => {
    controller = null;
    send.disabled = false;
    stop.hidden = true;
    input.focus();
  };

  stop.addEventListener("click", () => controller && controller.abort());
  input.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey) {
      event.preventDefault();
      form.requestSubmit();
    }
  });

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const content = input.value.trim();
    if (!content || controller) return;
    const body = new FormData(form);
    bubble("user", content);
    input.value = "";
    const answer = bubble("assistant", "");
    answer.setAttribute("data-streaming", "true");
    controller = new AbortController();
    send.disabled = true;
    stop.hidden = false;
    try {
      const response = await fetch(form.dataset.streamUrl, {
        method: "POST", body, signal: controller.signal,
        headers: { "X-CSRFToken": body.get("csrfmiddlewaretoken") },
      });
      if (!response.ok) {
        const problem = await response.json().catch(() => null);
        throw new Error(problem?.error?.message || "The answer could not be started.");
      }
      if (response.headers.get("X-Conversation-Id")) {
        const id = response.headers.get("X-Conversation-Id");
        form.dataset.streamUrl = "/chat/" + id + "/stream";
        if (!location.pathname.endsWith(id)) history.replaceState(null, "", "/chat/" + id);
      }
      const reader = response.body.getReader();
      const decoder = new TextDecoder();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += decoder.decode(value, { stream: true });
        let cut;
        while ((cut = buffer.indexOf("\n\n")) >= 0) {
          const block = buffer.slice(0, cut);
          buffer = buffer.slice(cut + 2);
          const name = (block.match(/^event: (.*)$/m) || [])[1];
          const data = JSON.parse((block.match(/^data: (.*)$/m) || [, "null"])[1]);
          if (name === "delta") answer.textContent += data.content;
          if (name === "error") { answer.className = "bubble error"; answer.textContent += (answer.textContent ? "\n" : "") + data.error.message; }
          if (name === "done") answer.dataset.done = "true";
          answer.scrollIntoView({ block: "end" });
        }
      }
    } catch (error) {
      if (error.name === "AbortError") {
        answer.textContent += answer.textContent ? " [stopped]" : "[stopped]";
      } else {
        answer.className = "bubble error";
        answer.textContent = error.message;
      }
    } finally {
      answer.removeAttribute("data-streaming");
      finish();
    }
  });
}

document.addEventListener("DOMContentLoaded", () => {
  const form = document.getElementById("chat-form");
  if (form) setUpChat(form);
});
