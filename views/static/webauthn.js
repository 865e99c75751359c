/*
 * WebAuthn for this server's pages, the only script they run. A form marked
 * data-webauthn="authenticate" or "register" carries the server's options in data-options; on
 * submit the browser's credential API is asked (through @simplewebauthn/browser, loaded before this
 * file) and its answer is posted in the form's hidden "response" field. The server checks
 * everything; this file only carries the answer. Without WebAuthn the form says so and posts nothing.
 */
(function () {
  'use strict';
  var lib = window.SimpleWebAuthnBrowser;

  function showError(form, message) {
    var box = form.querySelector('[data-webauthn-error]');
    if (!box) return;
    box.textContent = message;
    box.hidden = false;
  }

  function explain(err) {
    if (err && err.name === 'NotAllowedError') return 'The request was cancelled or timed out. Try again.';
    if (err && err.name === 'InvalidStateError') return 'This passkey or security key is already registered for your account.';
    return 'Your browser could not use a passkey or security key here' + (err && err.message ? ': ' + err.message : '.');
  }

  function wire(form) {
    var kind = form.getAttribute('data-webauthn');
    if (!lib || !lib.browserSupportsWebAuthn()) {
      showError(form, 'This browser does not support passkeys or security keys.');
      var button = form.querySelector('button');
      if (button) button.disabled = true;
      return;
    }
    form.addEventListener('submit', function (event) {
      if (form.getAttribute('data-webauthn-done') === 'yes') return;
      event.preventDefault();
      var optionsJSON = JSON.parse(form.getAttribute('data-options'));
      var ceremony = kind === 'register' ? lib.startRegistration({ optionsJSON: optionsJSON }) : lib.startAuthentication({ optionsJSON: optionsJSON });
      ceremony.then(
        function (answer) {
          form.querySelector('input[name="response"]').value = JSON.stringify(answer);
          form.setAttribute('data-webauthn-done', 'yes');
          form.submit();
        },
        function (err) {
          showError(form, explain(err));
        },
      );
    });
  }

  var forms = document.querySelectorAll('form[data-webauthn]');
  for (var i = 0; i < forms.length; i++) wire(forms[i]);
})();
