// Wallet top-up: Stripe's card form, our API, 3-D Secure when the bank asks for it.
(function () {
  "use strict";
  var form = document.getElementById("topup-form");
  if (!form || typeof Stripe === "undefined") { return; }
  var stripe = Stripe(form.dataset.publishableKey);
  var card = stripe.elements().create("card");
  card.mount("#card-element");
  var csrf = document.querySelector('meta[name="csrf-token"]').content;
  var message = document.getElementById("topup-message");
  var button = document.getElementById("topup-submit");

  function say(text) { message.textContent = text; }

  function newKey() {
    if (window.crypto && window.crypto.randomUUID) { return window.crypto.randomUUID(); }
    return String(Date.now()) + "-" + String(Math.random()).slice(2);
  }

  async function paymentMethodId() {
    if (typeof stripe.createPaymentMethod === "function") {
      var result = await stripe.createPaymentMethod({ type: "card", card: card });
      if (result && result.error) { throw new Error(result.error.message || "Check the card details."); }
      if (result && result.paymentMethod) { return result.paymentMethod.id; }
    }
    // localstripe's stand-in Stripe.js has no createPaymentMethod; its card tokens work instead.
    var tokenResult = await stripe.createToken(card);
    if (tokenResult.error) { throw new Error(tokenResult.error.message || "Check the card details."); }
    return tokenResult.token.card.id;
  }

  async function api(method, url, body, key) {
    var headers = { "Accept": "application/json", "X-CSRFToken": csrf };
    if (body) { headers["Content-Type"] = "application/json"; }
    if (key) { headers["Idempotency-Key"] = key; }
    var response = await fetch(url, {
      method: method, headers: headers, credentials: "same-origin",
      body: body ? JSON.stringify(body) : undefined
    });
    var data = await response.json().catch(function () { return {}; });
    if (!response.ok) {
      throw new Error((data.error && data.error.message) || "The payment did not go through.");
    }
    return data;
  }

  function pause(ms) { return new Promise(function (resolve) { setTimeout(resolve, ms); }); }

  async function waitUntilCredited(id) {
    var deadline = Date.now() + 30000;
    while (Date.now() < deadline) {
      var data = await api("GET", "/api/v1/wallet/topups/" + encodeURIComponent(id));
      if (data.topup.status === "succeeded") { return data; }
      if (data.topup.status === "failed" || data.topup.status === "canceled" ||
          data.topup.status === "requires_payment_method") {
        throw new Error("The payment did not go through.");
      }
      await pause(700);
    }
    throw new Error("The payment is still processing; your wallet updates when it completes.");
  }

  form.addEventListener("submit", async function (event) {
    event.preventDefault();
    button.disabled = true;
    say("Processing…");
    try {
      var checked = form.querySelector('input[name="amount"]:checked');
      var body = {
        amount: parseInt(checked.value, 10),
        currency: form.dataset.currency,
        payment_method: await paymentMethodId()
      };
      if (form.dataset.buy) { body.buy = form.dataset.buy; }
      var topup = (await api("POST", "/api/v1/wallet/topups", body, newKey())).topup;
      if (topup.status === "requires_action") {
        say("Your bank asks you to confirm the payment…");
        var confirmation = await stripe.confirmCardPayment(topup.client_secret);
        if (confirmation.error) { throw new Error(confirmation.error.message || "The payment was not confirmed."); }
      }
      await waitUntilCredited(topup.id);
      say("Done: your wallet is topped up.");
      window.location.assign(form.dataset.returnUrl);
    } catch (error) {
      say(error.message);
      button.disabled = false;
    }
  });
}());
