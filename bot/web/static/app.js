// codethread's page script: the prompt boxes stream their answer through the JSON API, and a
// button that asks first (Delete) asks. No build step, no library; every word it shows comes
// from the page (data attributes of <body>), every change it asks for carries the CSRF token.
"use strict";

(() => {
  const csrf = document.querySelector('meta[name="csrf-token"]')?.content ?? "";
  const words = document.body.dataset;
  const notice = document.getElementById("notice");

  function tell(text) {
    notice.textContent = text;
    notice.hidden = false;
  }

  // A form's fields as the API's JSON body (the CSRF token goes in its header instead).
  function body(form) {
    const fields = {};
    for (const [name, value] of new FormData(form)) {
      if (name !== "csrf" && value !== "") fields[name] = value;
    }
    return JSON.stringify(fields);
  }

  // Server-sent events from a fetch response: calls show(event, data) for each one.
  async function events(response, show) {
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += value.replace(/\r\n/g, "\n");
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        let name = "message";
        const data = [];
        for (const line of block.split("\n")) {
          if (line.startsWith("event:")) name = line.slice(6).trim();
          else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
        }
        if (data.length) show(name, JSON.parse(data.join("\n")));
      }
    }
  }

  // Where a finished turn's result is: the session's page (its latest version).
  function resultPage(data) {
    const session = data.session?.id;
    return data.version && session ? `/s/${session}` : null;
  }

  async function stream(form) {
    const live = document.getElementById(form.dataset.live);
    const button = form.querySelector('button[type="submit"]');
    button.disabled = true;
    notice.hidden = true;
    live.hidden = false;
    live.textContent = words.waiting;
    let finished = false;
    try {
      const response = await fetch(form.dataset.stream, {
        method: "POST",
        headers: {
          "Content-Type": "application/json",
          Accept: "text/event-stream",
          "X-CSRF-Token": csrf,
        },
        body: body(form),
        credentials: "same-origin",
      });
      const type = response.headers.get("Content-Type") ?? "";
      if (!response.ok || !type.startsWith("text/event-stream")) {
        const answer = await response.json().catch(() => ({}));
        live.hidden = true;
        tell(answer.error ?? words.failed + response.status);
        finished = true;
        return;
      }
      // The API streams the answer as "delta" events of one message ("stream" starts it);
      // status lines and the result are whole views (their markdown in "text").
      await events(response, (name, data) => {
        if (name === "done") {
          finished = true;
          const page = resultPage(data);
          if (page) window.location.assign(page);
          else if (data.answer) live.textContent = data.answer;
        } else if (name === "error") {
          finished = true;
          tell(data.error ?? words.failed);
        } else if (name === "stream") {
          live.textContent = "";
        } else if (name === "delta") {
          live.append(data.delta);
        } else if (typeof data.text === "string") {
          live.textContent = data.text;
        }
      });
      if (!finished) tell(words.lost);
    } catch (error) {
      tell(words.lost);
    } finally {
      button.disabled = false;
    }
  }

  // A login link's page posts the link at once: opening a link (a GET) spends nothing, so
  // that previewers and scanners that fetch links on their own neither use it up nor sign in.
  for (const form of document.querySelectorAll("form[data-autosubmit]")) form.submit();

  for (const form of document.querySelectorAll("form[data-stream]")) {
    form.addEventListener("submit", (event) => {
      if (!window.ReadableStream || !window.TextDecoderStream) return; // the plain form
      event.preventDefault();
      stream(form);
    });
  }

  for (const form of document.querySelectorAll("form[data-confirm]")) {
    form.addEventListener("submit", (event) => {
      if (!window.confirm(form.dataset.confirm)) event.preventDefault();
    });
  }

  // A button's form answers when its work is done (a run, a fix): say so meanwhile.
  for (const form of document.querySelectorAll('form[method="post"]:not([data-stream])')) {
    form.addEventListener("submit", (event) => {
      const button = form.querySelector('button[type="submit"]');
      // (getAttribute: the form's "action" field hides its action property)
      if (button && !event.defaultPrevented && form.getAttribute("action").endsWith("/act")) {
        button.textContent = words.working;
        setTimeout(() => { button.disabled = true; }, 0); // after the form took its value
      }
    });
  }
})();
