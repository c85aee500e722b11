// Saving a card for auto top-up: Stripe's card form, then PUT /api/v1/wallet/card.
//
// The card number goes from Stripe's element straight to Stripe; our API only sees the
// PaymentMethod id, and saves it with a SetupIntent on the reader's Stripe Customer.
// When the bank asks for 3-D Secure, Stripe.js finishes the SetupIntent and the same
// request is sent again.
(function () {
  "use strict";
  var form = document.getElementById("card-form");
  if (!form) { return; }
  var message = document.getElementById("card-message");
  var button = document.getElementById("save-card");

  function say(text, kind) {
    message.textContent = text;
    message.className = "topup-message" + (kind ? " " + kind : "");
  }

  if (typeof Stripe === "undefined") {
    button.disabled = true;
    say("The card form could not load. Check your connection and reload the page.", "error");
    return;
  }

  var stripe = Stripe(form.dataset.publishableKey);
  var card = stripe.elements().create("card");
  card.mount("#saved-card-element");
  var csrf = document.querySelector('meta[name="csrf-token"]').content;

  async function paymentMethodId() {
    if (typeof stripe.createPaymentMethod === "function") {
      var result = await stripe.createPaymentMethod({ type: "card", card: card });
      if (result && result.error) { throw new Error(result.error.message); }
      if (result && result.paymentMethod) { return result.paymentMethod.id; }
    }
    // localstripe's stand-in Stripe.js has no working createPaymentMethod (see wallet.js).
    var tokenResult;
    try {
      tokenResult = await stripe.createToken(card);
    } catch (ignored) {
      throw new Error("Enter your card number, expiry date and CVC.");
    }
    if (tokenResult.error) { throw new Error(tokenResult.error.message || "Check the card details."); }
    return tokenResult.token.card.id;
  }

  async function putCard(paymentMethod) {
    var response = await fetch("/api/v1/wallet/card", {
      method: "PUT",
      credentials: "same-origin",
      headers: { "Accept": "application/json", "Content-Type": "application/json", "X-CSRFToken": csrf },
      body: JSON.stringify({ payment_method: paymentMethod })
    });
    var data = await response.json().catch(function () { return {}; });
    return { ok: response.ok, status: response.status, data: data };
  }

  form.addEventListener("submit", async function (event) {
    event.preventDefault();
    if (button.disabled) { return; }
    button.disabled = true;
    say("Saving your card…");
    try {
      var paymentMethod = await paymentMethodId();
      var answer = await putCard(paymentMethod);
      var error = answer.data.error || {};
      if (answer.status === 402 && error.code === "requires_action") {
        say("Your bank asks you to confirm the card…");
        var confirmation = await stripe.confirmCardSetup(answer.data.setup_intent.client_secret);
        if (confirmation.error) {
          throw new Error((confirmation.error.message || "The card was not confirmed.") + " Nothing was saved.");
        }
        answer = await putCard(paymentMethod);
        error = answer.data.error || {};
      }
      if (!answer.ok) {
        throw new Error(error.message || "The card could not be saved. Nothing was charged.");
      }
      window.location.assign(form.dataset.doneUrl);
    } catch (failure) {
      say(failure.message, "error");
      button.disabled = false;
    }
  });
}());
