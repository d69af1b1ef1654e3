// The page's forms talk to the JSON API; errors come back as readable messages.
"use strict";

function show(text, ok) {
  const box = document.getElementById("message");
  box.textContent = text;
  box.className = ok ? "ok" : "error";
  box.hidden = false;
}

function describe(status, body) {
  if (body && typeof body.detail === "string") return body.detail;
  if (body && Array.isArray(body.detail)) {
    return body.detail.map((e) => (e.loc || []).slice(1).join(".") + ": " + e.msg).join("; ");
  }
  if (body && body.message) {
    return body.message + (body.constraint ? " (" + body.constraint + ")" : "");
  }
  return "the server answered " + status;
}

function payload(form) {
  const data = Object.fromEntries(new FormData(form).entries());
  if (form.dataset.kind === "stock") return { delta: Number(data.delta) };
  const out = { sku: data.sku, name: data.name, category: data.category, price: data.price };
  out.stock = data.stock === "" ? 0 : Number(data.stock);
  out.tags = (data.tags || "").split(",").map((t) => t.trim()).filter((t) => t);
  return out;
}

async function submitJson(event) {
  event.preventDefault();
  const form = event.target;
  let resp;
  try {
    resp = await fetch(form.dataset.api, {
      method: form.dataset.method,
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(payload(form)),
    });
  } catch (err) {
    show("The service cannot be reached: " + err, false);
    return;
  }
  const body = await resp.json().catch(() => null);
  if (!resp.ok) {
    show(describe(resp.status, body), false);
    return;
  }
  if (form.dataset.kind === "stock") {
    document.getElementById("stock").textContent = body.stock;
    show("Stock is now " + body.stock + ".", true);
  } else {
    window.location.href = "/products/" + body.id + "?created=1";
  }
}

function upload(event) {
  event.preventDefault();
  const form = event.target;
  const bar = document.getElementById("upload-progress");
  const status = document.getElementById("upload-status");
  const xhr = new XMLHttpRequest();
  xhr.open("POST", form.dataset.api);
  bar.hidden = false;
  bar.value = 0;
  status.textContent = "Uploading…";
  xhr.upload.onprogress = (e) => {
    if (e.lengthComputable) bar.value = Math.round((100 * e.loaded) / e.total);
  };
  xhr.upload.onload = () => { bar.value = 100; status.textContent = "Importing…"; };
  xhr.onload = () => {
    let body = null;
    try { body = JSON.parse(xhr.responseText); } catch (e) { body = null; }
    if (xhr.status >= 200 && xhr.status < 300) {
      status.textContent = "";
      show("Imported " + body.rows + " rows.", true);
      setTimeout(() => window.location.reload(), 800);
    } else {
      status.textContent = "";
      show("Import failed: " + describe(xhr.status, body), false);
    }
  };
  xhr.onerror = () => show("The upload failed: the service cannot be reached.", false);
  xhr.send(new FormData(form));
}

document.addEventListener("DOMContentLoaded", () => {
  for (const form of document.querySelectorAll("form[data-method]")) {
    form.addEventListener("submit", submitJson);
  }
  const up = document.getElementById("upload");
  if (up) up.addEventListener("submit", upload);
  if (new URLSearchParams(window.location.search).get("created")) show("Product created.", true);
});
