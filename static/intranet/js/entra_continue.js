// Entra's form_post arrives cross-site (without Beacon's SameSite=Lax cookie); re-post it same-site.
(function () {
  var form = document.getElementById("entra-continue");
  if (form) { form.submit(); }
})();
