/* resnetbench report: sortable/filterable cases table and charts. No network access. */
(function () {
  "use strict";

  // ------------------------------------------------------------ cases table
  var table = document.getElementById("cases");
  if (table) {
    var tbody = table.tBodies[0];
    var rows = Array.prototype.slice.call(tbody.rows);
    // Lower-cased row text computed once: filtering 500 rows on every keystroke stays instant.
    var haystack = rows.map(function (r) { return r.textContent.toLowerCase(); });

    var sortValue = function (row, index, numeric) {
      var cell = row.cells[index];
      var raw = cell.hasAttribute("data-v") ? cell.getAttribute("data-v") : "";
      if (raw === "") return null;
      if (!numeric) return raw.toLowerCase();
      var num = parseFloat(raw);
      return isNaN(num) ? null : num;
    };

    table.tHead.addEventListener("click", function (event) {
      var th = event.target.closest("th");
      if (!th) return;
      var index = th.cellIndex;
      var numeric = th.getAttribute("data-type") === "num";
      var dir = th.getAttribute("aria-sort") === "ascending" ? -1 : 1;
      Array.prototype.forEach.call(table.tHead.rows[0].cells, function (c) {
        c.removeAttribute("aria-sort");
      });
      th.setAttribute("aria-sort", dir === 1 ? "ascending" : "descending");
      var keyed = rows.map(function (row, i) {
        return { row: row, key: sortValue(row, index, numeric), i: i };
      });
      keyed.sort(function (a, b) {
        // Missing values go last in both directions; ties keep the original order.
        if (a.key === null || b.key === null) {
          return (a.key === null) - (b.key === null) || a.i - b.i;
        }
        if (a.key < b.key) return -dir;
        if (a.key > b.key) return dir;
        return a.i - b.i;
      });
      var fragment = document.createDocumentFragment();
      keyed.forEach(function (k) { fragment.appendChild(k.row); });
      tbody.appendChild(fragment);
    });

    var input = document.getElementById("filter");
    var selects = Array.prototype.slice.call(document.querySelectorAll("select[data-axis]"));
    var shown = document.getElementById("shown");
    var applyFilter = function () {
      var terms = input.value.toLowerCase().split(/\s+/).filter(Boolean);
      var wanted = selects
        .filter(function (s) { return s.value !== ""; })
        .map(function (s) { return ["data-" + s.getAttribute("data-axis"), s.value]; });
      var count = 0;
      rows.forEach(function (row, i) {
        var ok = terms.every(function (t) { return haystack[i].indexOf(t) !== -1; }) &&
          wanted.every(function (w) { return row.getAttribute(w[0]) === w[1]; });
        row.hidden = !ok;
        if (ok) count += 1;
      });
      shown.textContent = count + " of " + rows.length + " shown";
    };
    input.addEventListener("input", applyFilter);
    selects.forEach(function (s) { s.addEventListener("change", applyFilter); });
  }

  // ------------------------------------------------------------ charts
  var figures = JSON.parse(document.getElementById("figures").textContent);
  var packed = document.getElementById("plotly-gz");

  var fail = function (message) {
    figures.forEach(function (f) {
      var el = document.getElementById(f.id);
      if (el) {
        var p = document.createElement("p");
        p.className = "chart-error";
        p.textContent = message;
        el.appendChild(p);
      }
    });
    document.body.setAttribute("data-charts", "failed");
  };

  // plotly.js ships gzip-compressed to keep the report small; the browser inflates it and
  // runs it from a blob: URL, so nothing is fetched from the network.
  var loadPlotly = function () {
    if (window.Plotly) return Promise.resolve(window.Plotly);
    if (typeof DecompressionStream === "undefined") {
      return Promise.reject(new Error("this browser lacks DecompressionStream (needs a 2023+ browser)"));
    }
    var text = atob(packed.textContent.trim());
    var bytes = new Uint8Array(text.length);
    for (var i = 0; i < text.length; i++) bytes[i] = text.charCodeAt(i);
    var stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("gzip"));
    return new Response(stream).text().then(function (code) {
      return new Promise(function (resolve, reject) {
        var script = document.createElement("script");
        script.src = URL.createObjectURL(new Blob([code], { type: "text/javascript" }));
        script.onload = function () { URL.revokeObjectURL(script.src); resolve(window.Plotly); };
        script.onerror = function () { reject(new Error("plotly.js failed to load")); };
        document.head.appendChild(script);
      });
    });
  };

  if (!figures.length) return;
  if (!packed) { fail("Charts unavailable: plotly was not installed when this report was made."); return; }
  loadPlotly().then(function (Plotly) {
    var config = { displaylogo: false, responsive: true };
    return Promise.all(figures.map(function (f) {
      var el = document.getElementById(f.id);
      return el ? Plotly.newPlot(el, f.figure.data, f.figure.layout, config) : null;
    }));
  }).then(function () {
    document.body.setAttribute("data-charts", "ready");
  }, function (err) {
    fail("Charts unavailable: " + err.message);
  });
})();
