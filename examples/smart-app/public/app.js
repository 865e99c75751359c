// The redirect target: fhirclient exchanges the code (PKCE), then the app reads its patient.
(async () => {
  const $ = (id) => document.getElementById(id);
  const status = $('status');
  // fhirclient's errors carry the HTTP status line and the response body; an OperationOutcome's
  // diagnostics say more to a person than the raw JSON.
  const fail = (err) => {
    status.hidden = true;
    const trim = (text) => text.trim().replace(/\.$/, '');
    const first = trim(String(err.message).split('\n')[0]);
    const diagnostics = /"diagnostics":\s*"([^"]*)"/.exec(err.message)?.[1];
    $('error').textContent = `Error: ${first}${diagnostics ? ` — ${trim(diagnostics)}` : ''}. Launch the app again to sign in anew.`;
    $('error').hidden = false;
  };
  let client;
  try {
    client = await FHIR.oauth2.ready();
  } catch (err) {
    fail(err);
    return;
  }
  $('user').textContent = client.getFhirUser() || '(not shared)';
  $('scope').textContent = client.state.tokenResponse?.scope ?? '';
  $('session').hidden = false;

  async function readPatient() {
    $('error').hidden = true;
    status.hidden = false;
    status.textContent = 'Reading the patient record…';
    try {
      const patient = await client.patient.read();
      const name = (patient.name ?? [])[0] ?? {};
      $('patient-name').textContent = [...(name.given ?? []), name.family].filter(Boolean).join(' ') || '(no name)';
      $('patient-birth-date').textContent = patient.birthDate ?? 'unknown';
      $('patient-gender').textContent = patient.gender ?? 'unknown';
      $('patient-id').textContent = patient.id;
      $('patient').hidden = false;
      status.textContent = 'Record read.';
    } catch (err) {
      $('patient').hidden = true;
      fail(err);
    }
  }
  $('reload').addEventListener('click', readPatient);
  await readPatient();
})();
