/* archlab ui: follow the read model live. The server's /events stream says what the archive applied;
   the page then re-fetches its own content (?fragment=1, rendered and escaped by the server) and
   redraws its charts, keeping where the reader zoomed. At most one fetch is in flight; changes during
   it trigger one more, GAP_MS later (a busy campaign does not redraw a big tree many times a second). */
(function () {
  'use strict';
  var live = document.getElementById('live');
  var ticker = document.getElementById('ticker');
  var content = document.getElementById('content');
  var busy = false, again = false;
  var GAP_MS = 700;

  function zoomOf(root) {   // chart id -> its dataZoom windows; and the old charts are disposed (no leak)
    var kept = {};
    Array.prototype.forEach.call(root.querySelectorAll('.chart'), function (el) {
      var chart = echarts.getInstanceByDom(el);
      if (!chart) { return; }
      var zoom = chart.getOption().dataZoom;
      if (zoom) { kept[el.id] = zoom.map(function (z) { return {start: z.start, end: z.end}; }); }
      chart.dispose();
    });
    return kept;
  }

  function restoreZoom(kept) {
    Object.keys(kept).forEach(function (id) {
      var el = document.getElementById(id);
      var chart = el && echarts.getInstanceByDom(el);
      if (chart) { chart.setOption({dataZoom: kept[id]}); }
    });
  }

  function refresh() {
    if (busy) { again = true; return; }
    busy = true;
    var url = new URL(window.location.href);
    url.searchParams.set('fragment', '1');
    fetch(url.toString(), {credentials: 'same-origin', cache: 'no-store'})
      .then(function (r) { return r.ok ? r.text() : Promise.reject(r.status); })
      .then(function (html) {
        var y = window.scrollY;
        var kept = zoomOf(content);
        content.innerHTML = html;   // server-escaped HTML; a script inside innerHTML never runs, and the CSP allows none
        window.archlabCharts.renderAll(content);
        restoreZoom(kept);
        window.scrollTo(0, y);
        document.body.setAttribute('data-refreshed', String(Date.now()));
      })
      .catch(function () {})
      .then(function () { busy = false; if (again) { again = false; setTimeout(refresh, GAP_MS); } });
  }

  function note(events) {
    events.slice(-5).forEach(function (e) {
      var li = document.createElement('li');
      li.textContent = e.type + ' · ' + e.occurred_at;   // textContent: never parsed as HTML
      ticker.insertBefore(li, ticker.firstChild);
    });
    while (ticker.children.length > 8) { ticker.removeChild(ticker.lastChild); }
  }

  var source = new EventSource('/events');
  source.addEventListener('hello', function () { live.textContent = 'live'; live.className = 'live on'; });
  source.addEventListener('change', function (m) {
    var events = JSON.parse(m.data);
    document.body.setAttribute('data-seq', String(events[events.length - 1].seq));
    note(events);
    refresh();
  });
  source.onerror = function () { live.textContent = 'reconnecting…'; live.className = 'live'; };
})();
