// Sign in and sign up: one form, then back to where the reader came from.
import "./site.js";
import { $, api, showError, runPage } from "./common.js";

function login() {
  const form = $("#auth-form");
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    showError(form);
    const body = Object.fromEntries(new FormData(form).entries());
    try {
      await api("POST", "/api/auth/" + form.dataset.action, body);
      const next = form.dataset.next;
      location.href = next && next.startsWith("/") && !next.startsWith("//") ? next : "/";
    } catch (error) { showError(form, error); }
  });
}

runPage(login);
