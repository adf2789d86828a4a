// MathJax 3 for the math that pymdownx.arithmatex marks (docstrings and pages: $...$, $$...$$)
// and for $...$ in the tutorials' markdown cells. MathJax itself is assets/mathjax/, bundled.
window.MathJax = {
  tex: {
    inlineMath: [["\\(", "\\)"], ["$", "$"]],
    displayMath: [["\\[", "\\]"], ["$$", "$$"]],
    processEscapes: true,
    processEnvironments: true,
  },
  options: {
    ignoreHtmlClass: ".*|",
    processHtmlClass: "arithmatex|jp-RenderedMarkdown",
  },
};
