// The PromptPay QR page's one script: asks the payment's state every half second and, once it is
// paid (or expired), says so in the page's live region, hides the QR and stops asking. On an error
// it asks again two seconds later; it stops when the page's data-asking-ms have passed (the
// intent's expiry and a minute, counted from the page's answer: the browser's clock may be off).
(function () {
  "use strict";
  var region = document.getElementById("payment-state");
  var qr = document.getElementById("promptpay-qr");
  var done = document.getElementById("payment-done");
  if (!region || !qr) return;
  var url = region.getAttribute("data-state-url");
  var stopAt = Date.now() + Number(region.getAttribute("data-asking-ms"));

  function finish(state) {
    region.textContent = state.message;
    region.className = state.state === "paid" ? "ok" : "error";
    qr.hidden = true;
    if (done) done.hidden = false;
  }

  function ask() {
    if (Date.now() > stopAt) return;
    fetch(url, { credentials: "same-origin", cache: "no-store", headers: { Accept: "application/json" } })
      .then(function (answer) {
        if (!answer.ok) throw new Error("HTTP " + answer.status);
        return answer.json();
      })
      .then(function (state) {
        if (state.state === "paid" || state.state === "expired") finish(state);
        else setTimeout(ask, 500);
      })
      .catch(function () { setTimeout(ask, 2000); });
  }

  setTimeout(ask, 500);
})();
