// The tenant switcher: the portal router's POST /auth/switch-tenant takes JSON and rewrites the session
// cookie; the page then reloads to show the new tenant's dashboard. Everything else is plain HTML forms.
document.addEventListener("DOMContentLoaded", () => {
  const form = document.getElementById("tenant-switcher");
  if (!form) return;
  const select = form.querySelector("select");
  const error = form.querySelector(".form-error");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.textContent = "";
    const response = await fetch(form.action, {
      method: "POST",
      headers: { "Content-Type": "application/json", "Accept": "application/json" },
      body: JSON.stringify({ tenant_id: select.value }),
      credentials: "same-origin",
    });
    if (response.ok) {
      window.location.assign("/dashboard");
    } else if (response.status === 401) {
      window.location.assign("/login?next=/dashboard");
    } else {
      const body = await response.json().catch(() => ({}));
      error.textContent = body.detail || "Switching failed";
    }
  });
});
