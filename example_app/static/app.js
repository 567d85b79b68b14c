// Two small enhancements; everything else is plain HTML forms.
// - Tenant switching: the portal router's POST /auth/switch-tenant takes JSON and rewrites the session cookie;
//   the page then goes to the new tenant's dashboard (or to `data-next`). Every form with class
//   "switch-tenant" does this (the switcher in the top bar, the "switch there" buttons of a refusal).
// - The menu button folds the navigation on narrow screens (the CSS shows it open when there is no script).
// - A failed sign-in comes back to the form without the username (it never travels in the URL): the form keeps
//   it in this tab's sessionStorage while it is submitted and puts it back.
document.addEventListener("DOMContentLoaded", () => {
  for (const form of document.querySelectorAll("form.switch-tenant")) {
    const error = form.querySelector(".form-error");
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      if (error) error.textContent = "";
      const field = form.querySelector('[name="tenant_id"]');
      const response = await fetch(form.action, {
        method: "POST",
        headers: { "Content-Type": "application/json", "Accept": "application/json" },
        body: JSON.stringify({ tenant_id: field.value }),
        credentials: "same-origin",
      });
      if (response.ok) {
        window.location.assign(form.dataset.next || "/dashboard");
      } else if (response.status === 401) {
        window.location.assign("/login?next=/dashboard");
      } else {
        const body = await response.json().catch(() => ({}));
        if (error) error.textContent = body.detail || "Switching failed";
      }
    });
  }

  const toggle = document.getElementById("menu-toggle");
  const nav = document.getElementById("nav");
  if (toggle && nav) {
    toggle.addEventListener("click", () => {
      const open = nav.classList.toggle("open");
      toggle.setAttribute("aria-expanded", String(open));
      if (open) nav.querySelector("a")?.focus();
    });
  }

  const login = document.getElementById("login-form");
  if (login) {
    const username = login.querySelector('input[name="username"]');
    const kept = sessionStorage.getItem("login-username");
    if (kept && document.getElementById("login-error") && !username.value) {
      username.value = kept;
      login.querySelector('input[name="password"]').focus();
    }
    sessionStorage.removeItem("login-username");
    login.addEventListener("submit", () => sessionStorage.setItem("login-username", username.value));
  }
});
