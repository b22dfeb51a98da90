// "Who was here at T": a click on the presence chart, or the arrow keys while it has focus (Shift: by
// the hour; Home/End: the day's ends), list the occupants whose bars cover that moment.
// The bars carry nick, status and times as data attributes, so no request is needed.
(function () {
  "use strict";

  function pad(n) { return String(n).padStart(2, "0"); }

  function timeText(seconds) {
    var d = new Date(seconds * 1000);
    return d.getUTCFullYear() + "-" + pad(d.getUTCMonth() + 1) + "-" + pad(d.getUTCDate()) + " " +
      pad(d.getUTCHours()) + ":" + pad(d.getUTCMinutes()) + ":" + pad(d.getUTCSeconds()) + " UTC";
  }

  function momentOf(svg, event) {
    var point = svg.createSVGPoint();
    point.x = event.clientX;
    point.y = event.clientY;
    var x = point.matrixTransform(svg.getScreenCTM().inverse()).x;
    var plotX = Number(svg.dataset.plotX), plotWidth = Number(svg.dataset.plotWidth);
    var start = Number(svg.dataset.start), end = Number(svg.dataset.end);
    var fraction = Math.min(Math.max((x - plotX) / plotWidth, 0), 0.999999);
    return { x: plotX + fraction * plotWidth, t: start + fraction * (end - start) };
  }

  function occupantsAt(svg, t) {
    var present = {};
    svg.querySelectorAll("rect.bar").forEach(function (bar) {
      if (Number(bar.dataset.start) <= t && t < Number(bar.dataset.end)) {
        present[bar.dataset.nick] = bar.dataset.status;
      }
    });
    return Object.keys(present).sort(function (a, b) { return a.localeCompare(b); })
      .map(function (nick) { return [nick, present[nick]]; });
  }

  // Why who was here at t is not known, or null: the server's rule (presence.logic.unknown_why), from what
  // the chart carries: inside a gap (an archive gap, or before the archive began), or after the last known moment.
  function unknownWhy(svg, t) {
    var why = null;
    svg.querySelectorAll("rect.gap").forEach(function (gap) {
      if (why === null && Number(gap.dataset.start) <= t && t < Number(gap.dataset.end)) {
        why = "not known: " + gap.dataset.why;
      }
    });
    if (why === null && svg.dataset.knownUntil && t >= Number(svg.dataset.knownUntil)) {
      why = "not known: after the archive's last known moment";
    }
    return why;
  }

  function show(panel, t, occupants, unknown) {
    panel.textContent = "";
    var heading = document.createElement("strong");
    heading.textContent = "At " + timeText(t) + ": ";
    panel.appendChild(heading);
    if (unknown) {
      panel.appendChild(document.createTextNode(unknown));
      return;
    }
    if (occupants.length === 0) {
      panel.appendChild(document.createTextNode("nobody"));
    }
    occupants.forEach(function (entry) {
      var chip = document.createElement("span");
      chip.className = "occupant status-" + entry[1];
      chip.textContent = entry[0] + " (" + entry[1] + ")";
      panel.appendChild(chip);
    });
  }

  function xOf(svg, t) {
    var start = Number(svg.dataset.start), end = Number(svg.dataset.end);
    return Number(svg.dataset.plotX) + Number(svg.dataset.plotWidth) * (t - start) / (end - start);
  }

  function pointAt(svg, panel, t) {
    svg.dataset.at = String(t);
    var cursor = svg.querySelector("line.cursor");
    var x = xOf(svg, t);
    cursor.setAttribute("x1", x);
    cursor.setAttribute("x2", x);
    cursor.setAttribute("visibility", "visible");
    show(panel, t, occupantsAt(svg, t), unknownWhy(svg, t));
    var url = new URL(window.location.href);
    url.searchParams.set("at", new Date(Math.floor(t) * 1000).toISOString().replace(".000Z", "Z"));
    window.history.replaceState(null, "", url.toString());
  }

  var STEPS = { ArrowLeft: -300, ArrowRight: 300, ArrowDown: -300, ArrowUp: 300 };

  function onKey(svg, panel, event) {
    var start = Number(svg.dataset.start), end = Number(svg.dataset.end) - 1;
    var t = svg.dataset.at ? Number(svg.dataset.at) : start + (end - start) / 2;
    if (event.key in STEPS) {
      t += STEPS[event.key] * (event.shiftKey ? 12 : 1);
    } else if (event.key === "Home") {
      t = start;
    } else if (event.key === "End") {
      t = end;
    } else {
      return;
    }
    event.preventDefault();
    pointAt(svg, panel, Math.min(Math.max(t, start), end));
  }

  document.addEventListener("DOMContentLoaded", function () {
    var panel = document.getElementById("who-was-here");
    document.querySelectorAll("svg.presence-chart").forEach(function (svg) {
      svg.addEventListener("click", function (event) {
        pointAt(svg, panel, momentOf(svg, event).t);
      });
      svg.addEventListener("keydown", function (event) { onKey(svg, panel, event); });
    });
  });
})();
