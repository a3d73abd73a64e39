// MathJax 3 for two kinds of page: Markdown pages, where pymdownx.arithmatex (generic) wraps
// math in .arithmatex elements with \( \) / \[ \] delimiters, and notebook pages, where
// mkdocs-jupyter (nbconvert) leaves $ $ / $$ $$ in the rendered Markdown cells. Everything else
// (code, outputs, prose with a dollar sign) is left alone.
window.MathJax = {
  tex: {
    inlineMath: [["\\(", "\\)"], ["$", "$"]],
    displayMath: [["\\[", "\\]"], ["$$", "$$"]],
    processEscapes: true,
    processEnvironments: true,
  },
  options: {
    ignoreHtmlClass: ".*|",
    processHtmlClass: "arithmatex|jp-RenderedMarkdown|jp-MarkdownOutput",
  },
};

// mkdocs-material's instant navigation swaps pages without a reload: typeset each new page.
if (typeof document$ !== "undefined") {
  document$.subscribe(() => {
    if (window.MathJax && MathJax.typesetPromise) {
      MathJax.startup.output.clearCache();
      MathJax.typesetClear();
      MathJax.texReset();
      MathJax.typesetPromise();
    }
  });
}
