// The tinyvae site's one script: runs once MathJax has typeset the page.

// A displayed equation wider than its box (a derivation's column, or a side-by-side page's equation
// column) is scaled down to fit, but not below 60 %: past that it scrolls sideways inside its box,
// with a visible scrollbar and a shadow on the side that holds more, instead of being cut.
const DISPLAYED = ".sbs-eq mjx-container > svg, mjx-container[display='true'] > svg";

function fitEquations() {
  for (const svg of document.querySelectorAll(DISPLAYED)) {
    const container = svg.parentElement;
    if (!svg.dataset.width) {  // the size MathJax gave it, kept for when the window is resized
      const { width, height } = svg.getBoundingClientRect();
      svg.dataset.width = width;
      svg.dataset.height = height;
    }
    const width = Number(svg.dataset.width), height = Number(svg.dataset.height);
    const box = container.clientWidth;
    const scale = width > box && box > 0 ? Math.max(box / width, 0.6) : 1;
    svg.style.width = scale < 1 ? `${width * scale}px` : "";
    svg.style.height = scale < 1 ? `${height * scale}px` : "";
    container.classList.toggle("eq-scrolls", container.scrollWidth > container.clientWidth + 1);
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
    window.addEventListener("resize", fitEquations);
    showTarget();
    document.documentElement.dataset.typeset = "done";  // for the browser tests: the page is final
  });
});
