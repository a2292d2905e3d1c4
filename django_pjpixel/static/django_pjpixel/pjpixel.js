/* django-pjpixel: starts Prisjakt's browser script, and hands its click to the checkout form.
 *
 * Rendered by {% pjpixel_script %} after Prisjakt's script, both deferred. With
 * data-pjpixel-pixel (consent given): pjpixel.init(pixel), then every
 * <input data-pjpixel-click> ({% pjpixel_click_input %}) gets the click of
 * pjpixel.getConversion(), now and again as its form is submitted. Without it
 * (no consent): what Prisjakt's script kept in this browser is removed.
 */
(function () {
  "use strict";
  var script = document.currentScript;
  var pixel = script && script.getAttribute("data-pjpixel-pixel");
  if (!pixel) {
    try {
      window.localStorage.removeItem("pjpixel_conversion");
    } catch (error) {
      /* storage disabled: nothing was kept */
    }
    return;
  }
  var pjpixel = window.pjpixel;
  if (!pjpixel || typeof pjpixel.init !== "function") {
    return; /* Prisjakt's script did not load (blocked, offline) */
  }
  pjpixel.init(pixel);

  function fill() {
    var conversion = pjpixel.getConversion();
    if (!conversion || !conversion.clickId) {
      return;
    }
    if (conversion.pixelId && String(conversion.pixelId) !== pixel) {
      return; /* another pixel's click */
    }
    var inputs = document.querySelectorAll("input[data-pjpixel-click]");
    for (var i = 0; i < inputs.length; i += 1) {
      inputs[i].value = conversion.clickId;
    }
  }

  fill();
  document.addEventListener("submit", fill, true);
})();
