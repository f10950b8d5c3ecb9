// What every page runs once: the header's sign-out button. Imported by each page's module for its effect.
import { $ } from "./common.js";

// Signing out ends the session on the server, then returns to the front page.
const signOut = $("#sign-out");
if (signOut) {
  signOut.addEventListener("click", async () => {
    await fetch("/api/auth/logout", { method: "POST", credentials: "same-origin" });
    location.href = "/";
  });
}
