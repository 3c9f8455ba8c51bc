// The tinyvae site's one script: runs once MathJax has typeset the page.

// A side-by-side equation wider than its column is scaled down to fit, but not below 60 %: past
// that it scrolls sideways instead of becoming unreadable.
function fitEquations() {
  for (const svg of document.querySelectorAll(".sbs-eq mjx-container > svg")) {
    const box = svg.parentElement.clientWidth;
    const { width, height } = svg.getBoundingClientRect();
    if (width > box && box > 0) {
      const scale = Math.max(box / width, 0.6);
      svg.style.width = `${width * scale}px`;
      svg.style.height = `${height * scale}px`;
    }
  }
}

// Typesetting changes the height of everything above an anchor, so bring the element named by the
// address's #fragment (an equation, a line of code) back into view.
function showTarget() {
  const target = location.hash && document.getElementById(decodeURIComponent(location.hash.slice(1)));
  if (target) target.scrollIntoView({ behavior: "instant" });  // the theme scrolls smoothly otherwise
}

window.addEventListener("load", () => {
  if (!window.MathJax || !MathJax.startup) return;
  MathJax.startup.promise.then(() => {
    fitEquations();
    showTarget();
    document.documentElement.dataset.typeset = "done";  // for the browser tests: the page is final
  });
});
