// The shipping workbench's 打印 button: hands the print jobs of the ticked parcels (or the
// whole tab) to each platform's local print component on this PC over a WebSocket, follows
// every task to its result and reports each result to ecbao.
//
// - jobs come from POST data-jobs-url (the same form fields as the bulk actions): one document
//   per waybill in its component's own format, already journaled as sent;
// - Douyin and Kuaishou speak the Cainiao-family protocol ({cmd, requestID, version "1.0"}, one
//   "print" task per document, "notifyPrintResult" pushes, "getTaskStatus" when a push is late or
//   after a reconnect); WeChat its print v2.0 ({command, requestID, taskList}) with a
//   "notifyPrintResult" push per task;
// - requests wait until the socket is open and answers are matched by requestID; a dropped
//   connection is opened again and the open tasks asked for;
// - every result goes to POST data-result-url (CSRF header, this tenant only); the row shows it;
// - a component that is not running: a clear message, and the tasks are recorded as failed.
// No inline script (the Content-Security-Policy allows only our own files); the component URLs
// come from the page (PRINT_COMPONENT_URLS), texts from data-msg-* attributes (translated).
(function () {
  "use strict";

  var config = document.getElementById("print-config");
  if (!config) {
    return;
  }
  var COMPONENTS = JSON.parse(config.getAttribute("data-components") || "{}");
  var NAMES = JSON.parse(config.getAttribute("data-platform-names") || "{}");
  var JOBS_URL = config.getAttribute("data-jobs-url");
  var RESULT_URL = config.getAttribute("data-result-url");
  var OPEN_TIMEOUT_MS = 4000;
  var STATUS_POLL_MS = 3000;
  var GIVE_UP_MS = 120000;
  var RECONNECTS = 5;

  function msg(name, values) {
    var text = config.getAttribute("data-msg-" + name) || name;
    Object.keys(values || {}).forEach(function (key) {
      text = text.split("{" + key + "}").join(String(values[key]));
    });
    return text;
  }

  function csrfToken() {
    var input = document.querySelector("input[name=csrfmiddlewaretoken]");
    return input ? input.value : "";
  }

  function statusBox() {
    return document.getElementById("print-status");
  }

  function say(text, kind) {
    var box = statusBox();
    if (!box) {
      return;
    }
    var line = document.createElement("div");
    line.className = "print-line " + (kind || "");
    line.textContent = text;
    box.appendChild(line);
  }

  function rowStatus(parcelId, text, kind) {
    var row = document.getElementById("parcel-" + parcelId);
    var cell = row && row.querySelector("[data-print-status]");
    if (cell) {
      cell.textContent = text;
      cell.className = "print-state " + (kind || "");
    }
  }

  function post(url, data, tries) {
    return fetch(url, {
      method: "POST",
      body: data,
      credentials: "same-origin",
      headers: { "X-CSRFToken": csrfToken(), "Accept": "application/json" },
    }).catch(function (error) {
      if ((tries || 0) < 3) {
        return new Promise(function (resolve) { setTimeout(resolve, 500 * ((tries || 0) + 1)); })
          .then(function () { return post(url, data, (tries || 0) + 1); });
      }
      throw error;
    });
  }

  // --- one print run: its tasks, their results ---------------------------------------------------

  function Run(jobs, done) {
    this.tasks = {};
    this.open = 0;
    this.printed = 0;
    this.failed = 0;
    this.reports = [];
    this.done = done;
    var self = this;
    jobs.forEach(function (job) {
      self.tasks[job.task_id] = { job: job, finished: false, sentAt: 0 };
      self.open += 1;
    });
  }

  Run.prototype.finish = function (taskId, ok, error, printer) {
    var task = this.tasks[taskId];
    if (!task || task.finished) {
      return;
    }
    task.finished = true;
    this.open -= 1;
    if (ok) {
      this.printed += 1;
      rowStatus(task.job.parcel_id, "✓ " + msg("printed"), "ok");
    } else {
      this.failed += 1;
      rowStatus(task.job.parcel_id, "✗ " + msg("failed", { error: error || "" }), "err");
    }
    var data = new FormData();
    data.append("task_id", taskId);
    data.append("ok", ok ? "1" : "0");
    data.append("error", error || "");
    data.append("printer", printer || "");
    this.reports.push(post(RESULT_URL, data).catch(function () {
      say(msg("report-failed", { task: taskId }), "err");
    }));
    if (this.open === 0) {
      var self = this;
      Promise.all(this.reports).then(function () { self.done(self); });
    }
  };

  Run.prototype.pending = function (platform) {
    var self = this;
    return Object.keys(this.tasks).filter(function (id) {
      var task = self.tasks[id];
      return !task.finished && task.job.platform === platform;
    });
  };

  // --- one component: a WebSocket that reconnects, requests matched by requestID -------------

  var requestSeq = 0;

  function Component(platform, url, dialect, run) {
    this.platform = platform;
    this.url = url;
    this.dialect = dialect;
    this.run = run;
    this.ws = null;
    this.waiting = {};
    this.queue = [];
    this.reconnects = 0;
    this.closed = false;
    this.poller = null;
  }

  Component.prototype.connect = function () {
    var self = this;
    return new Promise(function (resolve, reject) {
      var ws;
      try {
        ws = new WebSocket(self.url);
      } catch (error) {
        reject(error);
        return;
      }
      var timer = setTimeout(function () {
        ws.close();
        reject(new Error("timeout"));
      }, OPEN_TIMEOUT_MS);
      ws.onopen = function () {
        clearTimeout(timer);
        self.ws = ws;
        var queued = self.queue;
        self.queue = [];
        queued.forEach(function (text) { ws.send(text); });
        resolve(self);
      };
      ws.onerror = function () {
        clearTimeout(timer);
        reject(new Error("error"));
      };
      ws.onmessage = function (event) { self.receive(event.data); };
      ws.onclose = function () {
        clearTimeout(timer);
        if (self.ws === ws) {
          self.ws = null;
          self.lost();
        }
      };
    });
  };

  Component.prototype.send = function (body) {
    var self = this;
    requestSeq += 1;
    body.requestID = "ecb-" + Date.now() + "-" + requestSeq;
    var text = JSON.stringify(body);
    return new Promise(function (resolve) {
      self.waiting[body.requestID] = resolve;
      if (self.ws && self.ws.readyState === WebSocket.OPEN) {
        self.ws.send(text);
      } else {
        self.queue.push(text);
      }
    });
  };

  Component.prototype.receive = function (data) {
    var message;
    try {
      message = JSON.parse(data);
    } catch (error) {
      return;
    }
    var command = message.cmd || message.command;
    if (message.requestID && this.waiting[message.requestID]) {
      var resolve = this.waiting[message.requestID];
      delete this.waiting[message.requestID];
      resolve(message);
      return;
    }
    if (command === "notifyPrintResult") {
      this.notified(message);
    }
  };

  Component.prototype.notified = function (message) {
    if (this.dialect === "wechat") {
      var ok = message.status === "printed" || (message.errcode === 0 && message.status !== "failed");
      this.run.finish(String(message.taskID), ok, ok ? "" : message.errmsg, message.printer);
      return;
    }
    var status = message.taskStatus;
    if (status === "printed" || status === "failed") {
      this.run.finish(String(message.taskID), status === "printed", documentErrors(message.printStatus), message.printer);
    }
  };

  function documentErrors(documents) {
    return (documents || []).map(function (d) { return d.msg || d.detail || ""; }).filter(Boolean).join("; ");
  }

  // Cainiao family: ask for tasks whose push is late (or lost with a connection).
  Component.prototype.askStatus = function () {
    var self = this;
    if (this.dialect !== "cainiao") {
      return;
    }
    var now = Date.now();
    var late = this.run.pending(this.platform).filter(function (id) {
      var sentAt = self.run.tasks[id].sentAt;
      return sentAt && now - sentAt > STATUS_POLL_MS;
    });
    if (!late.length || !this.ws) {
      return;
    }
    this.send({ cmd: "getTaskStatus", version: "1.0", taskID: late }).then(function (answer) {
      (answer.printStatus || []).forEach(function (task) {
        var id = String(task.taskID);
        if (task.taskStatus === "printed") {
          self.run.finish(id, true, "", task.printer);
        } else if (task.taskStatus === "failed") {
          self.run.finish(id, false, documentErrors(task.documentStatus), task.printer);
        } else if (task.taskStatus === "notFound") {
          self.run.finish(id, false, msg("not-found"), "");
        }
      });
    });
  };

  Component.prototype.lost = function () {
    var self = this;
    if (this.closed || !this.run.pending(this.platform).length) {
      return;
    }
    if (this.reconnects >= RECONNECTS) {
      this.giveUp(msg("lost", { url: this.url }));
      return;
    }
    this.reconnects += 1;
    setTimeout(function () {
      self.connect().then(function () { self.askStatus(); }, function () { self.lost(); });
    }, 300 * this.reconnects);
  };

  Component.prototype.giveUp = function (reason) {
    var self = this;
    this.run.pending(this.platform).forEach(function (id) { self.run.finish(id, false, reason, ""); });
    this.close();
  };

  Component.prototype.close = function () {
    this.closed = true;
    if (this.poller) {
      clearInterval(this.poller);
    }
    if (this.ws) {
      var ws = this.ws;
      this.ws = null;
      ws.close();
    }
  };

  Component.prototype.print = function (jobs) {
    var self = this;
    var started = Date.now();
    this.poller = setInterval(function () {
      if (!self.run.pending(self.platform).length) {
        self.close();
      } else if (Date.now() - started > GIVE_UP_MS) {
        self.giveUp(msg("no-result"));
      } else {
        self.askStatus();
      }
    }, STATUS_POLL_MS);
    if (this.dialect === "wechat") {
      jobs.forEach(function (job) { self.run.tasks[job.task_id].sentAt = Date.now(); });
      return this.send({
        command: "print", version: "2.0", printType: 1, printer: "",
        taskList: jobs.map(function (job) { return job.document; }),
      }).then(function (answer) {
        if (answer.errcode !== 0) {
          jobs.forEach(function (job) { self.run.finish(job.task_id, false, answer.errmsg, ""); });
          return;
        }
        (answer.taskList || []).forEach(function (item) {
          if (item.errcode && item.errcode !== 0) {
            self.run.finish(String(item.taskID), false, item.errmsg, "");
          }
        });
      });
    }
    return Promise.all(jobs.map(function (job) {
      self.run.tasks[job.task_id].sentAt = Date.now();
      return self.send({
        cmd: "print", version: "1.0",
        task: {
          taskID: job.task_id, preview: false, printer: "", firstDocumentNumber: 1,
          totalDocumentCount: 1, documents: [job.document],
        },
      }).then(function (answer) {
        if (answer.status !== "success") {
          self.run.finish(job.task_id, false, answer.msg, "");
        }
      });
    }));
  };

  // --- the button --------------------------------------------------------------------------------

  function printSelected(button) {
    var form = button.form || document.getElementById("shipping-form");
    var box = statusBox();
    if (box) {
      box.textContent = "";
    }
    button.disabled = true;
    say(msg("preparing"));
    post(JOBS_URL, new FormData(form)).then(function (response) {
      return response.json().then(function (body) { return { ok: response.ok, body: body }; });
    }).then(function (reply) {
      var body = reply.body || {};
      (body.errors || []).forEach(function (refusal) {
        rowStatus(refusal.parcel_id, "✗ " + refusal.error, "err");
        say((refusal.tracking_no || "#" + refusal.parcel_id) + ": " + refusal.error, "err");
      });
      var jobs = body.jobs || [];
      if (!reply.ok || !jobs.length) {
        if (body.message) {
          say(body.message, "err");
        }
        button.disabled = false;
        return;
      }
      var run = new Run(jobs, function (finished) {
        say(msg("summary", { printed: finished.printed, failed: finished.failed }),
          finished.failed ? "err" : "ok");
        button.disabled = false;
        if (window.htmx) {
          window.htmx.trigger(document.body, "shipping-refresh");
        }
      });
      jobs.forEach(function (job) { rowStatus(job.parcel_id, msg("sending"), "progress"); });
      var byPlatform = {};
      jobs.forEach(function (job) { (byPlatform[job.platform] = byPlatform[job.platform] || []).push(job); });
      Object.keys(byPlatform).forEach(function (platform) {
        var mine = byPlatform[platform];
        var url = COMPONENTS[platform];
        var component = new Component(platform, url, mine[0].dialect, run);
        if (!url) {
          var missing = msg("no-component", { platform: NAMES[platform] || platform, url: "—" });
          say(missing, "err");
          component.giveUp(missing);
          return;
        }
        component.connect().then(function () {
          say(msg("connected", { platform: NAMES[platform] || platform, count: mine.length }));
          return component.print(mine);
        }, function () {
          var text = msg("no-component", { platform: NAMES[platform] || platform, url: url });
          say(text, "err");
          component.giveUp(text);
        });
      });
    }).catch(function () {
      say(msg("jobs-failed"), "err");
      button.disabled = false;
    });
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-print]");
    if (button) {
      event.preventDefault();
      printSelected(button);
    }
  });
})();
