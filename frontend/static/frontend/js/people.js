// The people tab (/manage/campaigns/<id>/people/): copy buttons for sign-up and study links.
// Everything else on the page is plain forms, so it works without this module.
for (const btn of document.querySelectorAll(".copy-btn")) {
  btn.addEventListener("click", async () => {
    const input = document.getElementById(btn.dataset.copy);
    if (!input) return;
    input.select();
    try {
      await navigator.clipboard.writeText(input.value);
      btn.textContent = "Copied";
    } catch {
      // Without clipboard permission the text stays selected for Ctrl+C.
      btn.textContent = "Press Ctrl+C";
    }
    setTimeout(() => { btn.textContent = "Copy"; }, 2000);
  });
}
