// Live updates: every element with data-refresh is reloaded from its URL every 2 s, while the
// tab is visible (polling stops when it is hidden and resumes when it is shown again).
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  for (const el of document.querySelectorAll("[data-refresh]")) {
    const refresh = async () => {
      if (document.hidden) return;
      try {
        const response = await fetch(el.dataset.refresh, { credentials: "same-origin" });
        if (response.ok) el.innerHTML = await response.text();
      } catch (_) {
        // The server is restarting or gone: try again at the next tick.
      }
    };
    setInterval(refresh, 2000);
    document.addEventListener("visibilitychange", refresh);
  }
  for (const form of document.querySelectorAll("form[data-confirm]")) {
    form.addEventListener("submit", (e) => {
      if (!window.confirm(form.dataset.confirm)) e.preventDefault();
    });
  }
});
