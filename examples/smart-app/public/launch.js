// Starts the SMART authorization with fhirclient: an EHR launch when the EHR passed `iss` and
// `launch`, otherwise a standalone launch against the configured FHIR server.
(async () => {
  const show = (id, text) => {
    const el = document.getElementById(id);
    el.textContent = text;
    el.hidden = false;
  };
  try {
    const config = await (await fetch('/config.json')).json();
    const params = new URLSearchParams(location.search);
    const launch = params.get('launch');
    await FHIR.oauth2.authorize({
      clientId: config.clientId,
      scope: launch ? config.ehrScope : config.standaloneScope,
      redirectUri: '/callback',
      iss: params.get('iss') || config.fhirBase,
      ...(launch ? { launch } : {}),
      // The server accepts S256 only; never fall back to a launch without PKCE.
      pkceMode: 'required',
    });
  } catch (err) {
    document.getElementById('status').hidden = true;
    show('error', `The app could not start: ${err.message}`);
  }
})();
