// Loaded by Locust's index page (injected by locust_llm.web.routes). Locust 2.47's React UI
// can only render a table in an extended tab, so while the "llm" tab is selected this mounts
// our dashboard (/llm/) in an iframe below Locust's table, and removes it otherwise.
(function () {
  "use strict";
  const ID = "locust-llm-frame";
  function onLLMTab() { return new URLSearchParams(window.location.search).get("tab") === "llm"; }
  function sync() {
    let frame = document.getElementById(ID);
    if (!onLLMTab()) { if (frame) frame.remove(); return; }
    const tables = document.querySelectorAll(".MuiTableContainer-root");
    const anchor = tables.length ? tables[tables.length - 1] : null;
    if (!anchor || !anchor.parentNode) return;
    if (frame && frame.previousElementSibling === anchor) return;
    if (!frame) {
      frame = document.createElement("iframe");
      frame.id = ID;
      frame.src = "./llm/";
      frame.title = "locust-llm dashboard";
      frame.style.cssText = "width:100%;height:1500px;border:0;margin-top:12px;display:block";
    }
    anchor.parentNode.insertBefore(frame, anchor.nextSibling);
  }
  new MutationObserver(sync).observe(document.documentElement, { childList: true, subtree: true });
  window.addEventListener("popstate", sync);
  setInterval(sync, 1000);
})();
