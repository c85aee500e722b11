// Wallet top-up: Stripe's card form, our API, 3-D Secure when the bank asks for it.
//
// The card number goes from Stripe's element straight to Stripe; our API only sees the
// PaymentMethod id. Once the top-up is credited the page moves on by itself to
// /wallet/topups/<id>/done, which says what happened (and shows the article when the
// top-up was made to buy one).
(function () {
  "use strict";
  var form = document.getElementById("topup-form");
  if (!form) { return; }
  var message = document.getElementById("topup-message");
  var button = document.getElementById("topup-submit");

  function say(text, kind) {
    message.textContent = text;
    message.className = "topup-message" + (kind ? " " + kind : "");
  }

  if (typeof Stripe === "undefined") {
    // Stripe.js is loaded from Stripe; a blocker or a network problem keeps it away.
    button.disabled = true;
    say("The card form could not load. Check your connection (or allow js.stripe.com " +
        "in your blocker) and reload the page.", "error");
    return;
  }

  var stripe = Stripe(form.dataset.publishableKey);
  var card = stripe.elements().create("card");
  card.mount("#card-element");
  var csrf = document.querySelector('meta[name="csrf-token"]').content;
  var buying = Boolean(form.dataset.buy);

  card.on("change", function (event) {
    // Real Stripe.js reports an invalid number as the person types; localstripe's does not.
    if (event && event.error) { say(event.error.message, "error"); } else { say(""); }
  });

  // The amount: a preset, or the "Other amount" field checked as the API checks it
  // (the same range and message, given by the page), before the card is touched.
  var other = document.getElementById("amount-other");
  var amountError = document.getElementById("amount-error");

  function otherAmount() {
    var text = other ? other.value.trim().replace(/^[$€£]\s*/, "") : "";
    if (!text) { return null; }
    if (!/^\d{1,7}(\.\d{1,2})?$/.test(text)) { return { error: "Enter an amount like 7.50." }; }
    var parts = text.split(".");
    var cents = parseInt(parts[0], 10) * 100 + (parts[1] ? parseInt((parts[1] + "0").slice(0, 2), 10) : 0);
    if (cents < parseInt(form.dataset.minimum, 10) || cents > parseInt(form.dataset.maximum, 10)) {
      return { error: form.dataset.rangeMessage };
    }
    return { value: cents, label: form.dataset.symbol + (cents / 100).toFixed(2) };
  }

  function selectedAmount() {
    var typed = otherAmount();
    if (typed) { return typed; }
    var checked = form.querySelector('input[name="amount"]:checked');
    return checked ? { value: parseInt(checked.value, 10), label: checked.dataset.label } : null;
  }

  function showAmountError(text) {
    if (!amountError) { return; }
    amountError.textContent = text || "";
    amountError.hidden = !text;
    if (other) {
      if (text) { other.setAttribute("aria-invalid", "true"); } else { other.removeAttribute("aria-invalid"); }
    }
  }

  function label() {
    var chosen = selectedAmount();
    var amount = chosen && !chosen.error ? chosen.label : "";
    button.textContent = "Pay " + amount + (buying ? " and read" : "");
  }
  form.addEventListener("change", function (event) {
    if (event.target && event.target.name === "amount") {
      if (other) { other.value = ""; }
      showAmountError("");
      label();
      pending = null;
    }
  });
  if (other) {
    other.addEventListener("input", function () {
      if (other.value.trim()) {
        Array.prototype.forEach.call(form.querySelectorAll('input[name="amount"]'), function (r) { r.checked = false; });
      }
      showAmountError("");
      label();
      pending = null;
    });
  }
  label();

  function newKey() {
    if (window.crypto && window.crypto.randomUUID) { return window.crypto.randomUUID(); }
    return String(Date.now()) + "-" + String(Math.random()).slice(2);
  }

  function cardError(text) {
    var error = new Error(text || "Check the card details.");
    error.kind = "card";
    return error;
  }

  async function paymentMethodId() {
    if (typeof stripe.createPaymentMethod === "function") {
      var result = await stripe.createPaymentMethod({ type: "card", card: card });
      if (result && result.error) { throw cardError(result.error.message); }
      if (result && result.paymentMethod) { return result.paymentMethod.id; }
    }
    // localstripe's stand-in Stripe.js has no working createPaymentMethod; its card
    // tokens carry a card id that PaymentIntents accept as a payment method.
    var tokenResult;
    try {
      tokenResult = await stripe.createToken(card);
    } catch (ignored) {  // localstripe throws when nothing has been typed yet
      throw cardError("Enter your card number, expiry date and CVC.");
    }
    if (tokenResult.error) {
      throw cardError(tokenResult.error.message || "Check the card details.");
    }
    return tokenResult.token.card.id;
  }

  function apiError(response, data) {
    var code = data.error && data.error.code;
    var text = data.error && data.error.message;
    if (response.status === 401) { text = "You have been logged out. Log in again to top up."; }
    else if (code === "card_declined") {
      text = (text || "Your card was declined.") + " Nothing was charged; try another card.";
    }
    var error = new Error(text || "The payment did not go through. Nothing was charged.");
    error.status = response.status;
    // A refused amount (422) is said beside the amount field, in the API's own words.
    error.amount = data.error && data.error.fields && data.error.fields.amount;
    return error;
  }

  async function api(method, url, body, key) {
    var headers = { "Accept": "application/json", "X-CSRFToken": csrf };
    if (body) { headers["Content-Type"] = "application/json"; }
    if (key) { headers["Idempotency-Key"] = key; }
    var response;
    try {
      response = await fetch(url, {
        method: method, headers: headers, credentials: "same-origin",
        body: body ? JSON.stringify(body) : undefined
      });
    } catch (networkError) {
      var error = new Error("We could not reach the server. Check your connection and " +
                            "press Pay again: you will not be charged twice.");
      error.kind = "network";
      throw error;
    }
    var data = await response.json().catch(function () { return {}; });
    if (!response.ok) { throw apiError(response, data); }
    return data;
  }

  function pause(ms) { return new Promise(function (resolve) { setTimeout(resolve, ms); }); }

  async function waitUntilCredited(id) {
    var deadline = Date.now() + 30000;
    while (Date.now() < deadline) {
      var data = await api("GET", "/api/v1/wallet/topups/" + encodeURIComponent(id));
      var status = data.topup.status;
      if (status === "succeeded") { return true; }
      if (status === "failed" || status === "canceled" || status === "requires_payment_method") {
        throw new Error("The payment did not go through. Nothing was charged; try again.");
      }
      await pause(700);
    }
    return false;
  }

  // The request being made: reused when the network failed before we heard back, so
  // that pressing Pay again replays the same top-up instead of charging twice.
  var pending = null;

  form.addEventListener("submit", async function (event) {
    event.preventDefault();
    if (button.disabled) { return; }
    var chosen = selectedAmount();
    if (!chosen || chosen.error) {
      showAmountError(chosen ? chosen.error : "Choose an amount.");
      if (other) { other.focus(); }
      return;
    }
    button.disabled = true;
    form.setAttribute("aria-busy", "true");
    say("Processing your payment…");
    try {
      if (!pending) {
        var body = {
          amount: chosen.value,
          currency: form.dataset.currency,
          payment_method: await paymentMethodId()
        };
        if (buying) { body.buy = form.dataset.buy; }
        pending = { body: body, key: newKey() };
      }
      var topup = (await api("POST", "/api/v1/wallet/topups", pending.body, pending.key)).topup;
      pending = null;
      if (topup.status === "requires_action") {
        say("Your bank asks you to confirm the payment…");
        var confirmation = await stripe.confirmCardPayment(topup.client_secret);
        if (confirmation.error) {
          throw new Error((confirmation.error.message || "The payment was not confirmed.") +
                          " Nothing was charged.");
        }
      }
      say("Payment received; updating your wallet…");
      await waitUntilCredited(topup.id);
      window.location.assign("/wallet/topups/" + encodeURIComponent(topup.id) + "/done");
    } catch (error) {
      if (error.kind !== "network") { pending = null; }
      if (error.amount) {
        showAmountError([].concat(error.amount).join(" "));
        say("");
      } else {
        say(error.message, "error");
      }
      button.disabled = false;
      form.removeAttribute("aria-busy");
    }
  });
}());
