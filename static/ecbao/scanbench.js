// Shared pieces of the scan benches (the verify bench, static/logistics/verify.js, and the
// returns scan bench, static/aftersales/returns_scan.js): the beeps (WebAudio, no files) with
// their count on the bench element for tests, the message line, and table cells.
(function () {
  "use strict";

  function beeper(bench) {
    var audio = null;
    var beeps = 0;
    return function beep(kind) {
      beeps += 1;
      bench.setAttribute("data-beeps", String(beeps));
      bench.setAttribute("data-last-beep", kind);
      try {
        var Ctx = window.AudioContext || window.webkitAudioContext;
        if (!Ctx) return;
        audio = audio || new Ctx();
        if (audio.state === "suspended") audio.resume();
        var tones = kind === "error" ? [[220, 0, 0.18], [180, 0.22, 0.3]] : kind === "done" ? [[660, 0, 0.08], [990, 0.1, 0.12]] : [[880, 0, 0.06]];
        tones.forEach(function (t) {
          var osc = audio.createOscillator();
          var gain = audio.createGain();
          osc.type = kind === "error" ? "square" : "sine";
          osc.frequency.value = t[0];
          gain.gain.value = kind === "error" ? 0.25 : 0.12;
          osc.connect(gain);
          gain.connect(audio.destination);
          osc.start(audio.currentTime + t[1]);
          osc.stop(audio.currentTime + t[1] + t[2]);
        });
      } catch (e) {
        /* no sound device: the message still shows */
      }
    };
  }

  function sayer(message) {
    return function say(text, kind) {
      message.textContent = text || "";
      message.className = "verify-message " + (kind || "");
      message.setAttribute("data-kind", kind || "");
    };
  }

  function cell(tr, text, cls) {
    var td = document.createElement("td");
    td.textContent = text == null ? "" : String(text);
    if (cls) td.className = cls;
    tr.appendChild(td);
    return td;
  }

  window.ecbaoScanBench = { beeper: beeper, sayer: sayer, cell: cell };
})();
