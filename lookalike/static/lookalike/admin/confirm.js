/*
 * Ask before the admin's consequential buttons act: a form submitted by a button (or a
 * form) with a data-confirm message submits only once the message is confirmed. Used for
 * reindexing every product and for starting and stopping an experiment (stopping with a
 * winner changes the default profile).
 */
(function () {
  "use strict";
  document.addEventListener("submit", function (event) {
    const button = event.submitter;
    const message = (button && button.dataset.confirm) || event.target.dataset.confirm;
    if (message && !window.confirm(message)) {
      event.preventDefault();
    }
  });
})();
