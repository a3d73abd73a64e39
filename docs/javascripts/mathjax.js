// MathJax 3 (shipped with the site: docs/_hooks.py) for two kinds of page. Markdown pages:
// pymdownx.arithmatex (generic) wraps each formula in a .arithmatex element with \( \) / \[ \]
// delimiters. Notebook pages: mkdocs-jupyter (nbconvert) renders a Markdown cell as
// <div class="jp-RenderedHTMLCommon jp-RenderedMarkdown jp-MarkdownOutput"> whose <p>, <li>,
// <td>... hold the $ $ / $$ $$ of the cell as plain text.
//
// How MathJax filters: an element whose class matches ignoreHtmlClass is skipped with all its
// descendants, unless its class matches processHtmlClass; an element without a class inherits
// its parent's state. ignoreHtmlClass ".+" (any class at all) therefore skips the whole theme
// (every container of mkdocs-material has a class), code, API docstrings and notebook outputs,
// while the class-less paragraphs inside a notebook Markdown cell are typeset. (The usual
// ".*|" also matches an element with NO class, so it skipped those paragraphs and notebook
// math never rendered.) jp-RenderedLatex: a code cell's text/latex output (display(Math(...))).
window.MathJax = {
  tex: {
    inlineMath: [["\\(", "\\)"], ["$", "$"]],
    displayMath: [["\\[", "\\]"], ["$$", "$$"]],
    processEscapes: true,
    processEnvironments: true,
  },
  options: {
    ignoreHtmlClass: ".+",
    processHtmlClass: "arithmatex|jp-MarkdownOutput|jp-RenderedLatex",
  },
};

// mkdocs-material's instant navigation swaps pages without a reload: typeset each new page.
// document$ also emits once for the page first loaded, which MathJax's startup typesets by
// itself: a second pass would typeset it again (with MathML input on, the hidden assistive
// MathML of every formula became a second, nested formula), so the first emission is skipped.
if (typeof document$ !== "undefined") {
  let firstPage = true;
  document$.subscribe(() => {
    if (firstPage) {
      firstPage = false;
      return;
    }
    if (window.MathJax && MathJax.typesetPromise) {
      MathJax.startup.output.clearCache();
      MathJax.typesetClear();
      MathJax.texReset();
      MathJax.typesetPromise();
    }
  });
}
