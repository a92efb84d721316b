// The scan-to-verify bench (templates/logistics/verify.html, logistics/views_pack.py).
// A barcode scanner is a keyboard: it types the code and Enter into the focused input.
// First scan: the parcel's waybill (lookup). Then every item (scan). A refusal beeps low and
// shows the reason; the server keeps the progress, so a reload continues (the parcel being
// verified is remembered in sessionStorage and looked up again). When every item is scanned,
// Enter on an empty input, the waybill scanned again, or the button confirms (done).
// Requests go one after another, in scan order, however fast the scanner types.
(function () {
  "use strict";
  var bench = document.getElementById("verify-bench");
  if (!bench) return;
  var input = document.getElementById("scan-input");
  var form = document.getElementById("scan-form");
  var label = document.getElementById("scan-label");
  var message = document.getElementById("verify-message");
  var panel = document.getElementById("parcel-panel");
  var linesBody = document.getElementById("verify-lines");
  var doneForm = document.getElementById("done-form");
  var doneButton = document.getElementById("done-button");
  var weightInput = document.getElementById("weight-input");
  var verifiedList = document.getElementById("verified-list");
  var csrf = bench.querySelector("input[name=csrfmiddlewaretoken]").value;
  var STORE_KEY = "ecbao.verify.parcel";
  var ticket = null;
  var queue = Promise.resolve();

  // --- sound and rendering (static/ecbao/scanbench.js) -------------------------------------------
  var beep = window.ecbaoScanBench.beeper(bench);
  var say = window.ecbaoScanBench.sayer(message);
  var cell = window.ecbaoScanBench.cell;

  function render(t, flashKey, refused) {
    ticket = t;
    if (!t) {
      panel.hidden = true;
      label.textContent = bench.getAttribute("data-label-waybill");
      return;
    }
    panel.hidden = false;
    panel.setAttribute("data-parcel", String(t.parcel_id));
    document.getElementById("parcel-tracking").textContent = t.tracking_no;
    document.getElementById("parcel-seq").textContent = t.count > 1 ? "(" + t.seq + "/" + t.count + ")" : "";
    document.getElementById("parcel-orders").textContent = t.orders.join(", ");
    var status = document.getElementById("parcel-status");
    status.textContent = t.status_display;
    status.className = "badge badge-" + t.status;
    status.setAttribute("data-status", t.status);
    document.getElementById("parcel-progress").textContent = t.scanned + " / " + t.units;
    linesBody.textContent = "";
    t.lines.forEach(function (line) {
      var tr = document.createElement("tr");
      tr.setAttribute("data-testid", "verify-line");
      tr.setAttribute("data-key", line.key);
      tr.setAttribute("data-code", line.merchant_code);
      if (line.complete) tr.classList.add("complete");
      if (flashKey && line.key === flashKey) tr.classList.add(refused ? "refused" : "flash");
      cell(tr, line.location || "—", "mono");
      cell(tr, line.merchant_code, "mono");
      cell(tr, line.barcode || "", "mono");
      cell(tr, line.title + (line.spec ? " · " + line.spec : ""), "wrap");
      cell(tr, line.quantity, "num");
      cell(tr, line.scanned, "num scanned").setAttribute("data-testid", "line-scanned");
      var last = cell(tr, line.complete ? "✓" : "");
      if (!line.complete && !t.verified) {
        var button = document.createElement("button");
        button.type = "button";
        button.className = "btn small secondary";
        button.textContent = bench.getAttribute("data-label-by-hand");
        button.setAttribute("data-testid", "by-hand");
        button.setAttribute("data-by-hand", line.key);
        last.appendChild(button);
      }
      linesBody.appendChild(tr);
    });
    doneButton.disabled = !(t.complete && !t.verified);
    if (t.verified) {
      label.textContent = bench.getAttribute("data-label-waybill");
    } else if (t.complete) {
      label.textContent = bench.getAttribute("data-label-complete");
    } else {
      label.textContent = bench.getAttribute("data-label-item");
    }
  }

  function addVerified(t) {
    var empty = verifiedList.querySelector(".empty-row");
    if (empty) empty.remove();
    var tr = document.createElement("tr");
    tr.setAttribute("data-testid", "verified-row");
    cell(tr, new Date().toLocaleTimeString());
    cell(tr, t.tracking_no, "mono");
    cell(tr, t.orders.join(", "), "mono");
    cell(tr, t.units, "num");
    cell(tr, t.weight_g == null ? "—" : t.weight_g, "num");
    verifiedList.insertBefore(tr, verifiedList.firstChild);
  }

  // --- requests ------------------------------------------------------------------------------
  function post(url, data) {
    var body = new URLSearchParams(data);
    return fetch(url, {
      method: "POST",
      body: body,
      credentials: "same-origin",
      headers: { "X-CSRFToken": csrf, "X-Requested-With": "fetch", Accept: "application/json" },
    }).then(function (response) {
      return response.json().catch(function () {
        return { ok: false, message: bench.getAttribute("data-network-error") + " (" + response.status + ")" };
      });
    }, function () {
      return { ok: false, message: bench.getAttribute("data-network-error") };
    });
  }

  function remember(t) {
    try {
      if (t && !t.verified) sessionStorage.setItem(STORE_KEY, t.tracking_no);
      else sessionStorage.removeItem(STORE_KEY);
    } catch (e) {
      /* private mode: a reload starts from the waybill */
    }
  }

  function lookup(code, quiet) {
    return post(bench.getAttribute("data-lookup-url"), { code: code }).then(function (answer) {
      if (answer.ok) {
        render(answer.ticket);
        remember(answer.ticket);
        if (!quiet) {
          say(answer.message, answer.ticket.verified ? "done" : "ok");
          beep("ok");
        }
      } else {
        if (!quiet) {
          say(answer.message, "refused");
          beep("error");
        } else {
          remember(null);
        }
      }
    });
  }

  function scanId() {
    if (window.crypto && window.crypto.randomUUID) return window.crypto.randomUUID();
    return String(Date.now()) + "-" + Math.random().toString(16).slice(2);
  }

  function scan(code) {
    var t = ticket;
    return post(bench.getAttribute("data-scan-url"), { parcel: t.parcel_id, code: code, scan_id: scanId() }).then(
      function (answer) {
        if (answer.ticket) render(answer.ticket, answer.item, !answer.ok);
        say(answer.message, answer.ok ? "ok" : "refused");
        beep(answer.ok ? "ok" : "error");
      }
    );
  }

  function byHand(key, reason) {
    var t = ticket;
    if (!t) return Promise.resolve();
    return post(bench.getAttribute("data-by-hand-url"), {
      parcel: t.parcel_id,
      item: key,
      reason: reason,
      scan_id: scanId(),
    }).then(function (answer) {
      if (answer.ticket) render(answer.ticket, answer.item, !answer.ok);
      say(answer.message, answer.ok ? "ok" : "refused");
      beep(answer.ok ? "ok" : "error");
      input.focus();
    });
  }

  function done() {
    var t = ticket;
    if (!t || t.verified) return Promise.resolve();
    var data = { parcel: t.parcel_id };
    if (weightInput.value) data.weight_g = weightInput.value;
    return post(bench.getAttribute("data-done-url"), data).then(function (answer) {
      if (answer.ticket) render(answer.ticket);
      if (answer.ok) {
        say(answer.message, "done");
        beep("done");
        addVerified(answer.ticket);
        remember(null);
        weightInput.value = "";
      } else {
        say(answer.message, "refused");
        beep("error");
      }
      input.focus();
    });
  }

  function reset() {
    var t = ticket;
    if (!t) return Promise.resolve();
    return post(bench.getAttribute("data-reset-url"), { parcel: t.parcel_id }).then(function (answer) {
      if (answer.ticket) render(answer.ticket);
      say(answer.message, answer.ok ? "ok" : "refused");
      if (!answer.ok) beep("error");
      input.focus();
    });
  }

  function handle(code) {
    var t = ticket;
    if (!code) {
      if (t && t.complete && !t.verified) return done();
      return Promise.resolve();
    }
    if (!t || t.verified) return lookup(code);
    if (t.complete && code.toUpperCase() === String(t.tracking_no).toUpperCase()) return done();
    return scan(code);
  }

  function enqueue(job) {
    queue = queue.then(job, job);
    bench.setAttribute("data-busy", "1");
    var mine = queue;
    mine.then(function () {
      if (mine === queue) bench.removeAttribute("data-busy");
    });
    return mine;
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    var code = input.value.trim();
    input.value = "";
    enqueue(function () {
      return handle(code);
    });
  });
  doneForm.addEventListener("submit", function (event) {
    event.preventDefault();
    enqueue(done);
  });
  // 强制: count one unit of a line by hand (torn barcode), with a reason on record.
  linesBody.addEventListener("click", function (event) {
    var button = event.target.closest("[data-by-hand]");
    if (!button) return;
    var reason = window.prompt(bench.getAttribute("data-prompt-by-hand"), "");
    if (reason === null) {
      input.focus();
      return;
    }
    var key = button.getAttribute("data-by-hand");
    enqueue(function () {
      return byHand(key, reason);
    });
  });
  document.getElementById("reset-button").addEventListener("click", function () {
    enqueue(reset);
  });
  document.getElementById("next-button").addEventListener("click", function () {
    remember(null);
    render(null);
    say("", "");
    input.focus();
  });
  // Keep the scanner's keystrokes in the scan input unless the packer is typing a weight.
  document.addEventListener("keydown", function (event) {
    var active = document.activeElement;
    if (active === input || active === weightInput || event.ctrlKey || event.metaKey || event.altKey) return;
    if (event.key && event.key.length === 1 && !(active && /^(INPUT|TEXTAREA|SELECT)$/.test(active.tagName))) {
      input.focus();
    }
  });

  var resume = null;
  try {
    resume = sessionStorage.getItem(STORE_KEY);
  } catch (e) {
    resume = null;
  }
  if (resume) {
    enqueue(function () {
      return lookup(resume, true);
    });
  }
  bench.setAttribute("data-ready", "1");
  input.focus();
})();
