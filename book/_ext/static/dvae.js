// Images the vendored widget manager draws at run time (the explorer's decoded image) carry no alt
// text in the page's HTML: describe each as it appears.
(function () {
  function describe(root) {
    root.querySelectorAll("img:not([alt])").forEach(function (img) {
      var widget = img.closest(".jupyter-widgets");
      img.setAttribute("alt", widget
        ? "The image the explorer decodes for the chosen model, seed image, latent and value"
        : document.title + ": an image drawn by the page");
    });
  }
  document.addEventListener("DOMContentLoaded", function () {
    describe(document);
    new MutationObserver(function () { describe(document); })
      .observe(document.body, {subtree: true, childList: true});
  });
})();
