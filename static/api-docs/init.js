/*
 * Starts Swagger UI on flightdeck's OpenAPI document. The page and its scripts are code only
 * and served without the token; the document and every "Try it out" call are API requests and
 * carry it: the token the board keeps in this browser (localStorage, set when you sign in on
 * the board) is added to each request, unless one was given through "Authorize". Requests
 * that change state also carry X-Flightdeck: 1, as the board's do.
 */
(function () {
  'use strict';
  var TOKEN_KEY = 'flightdeck.token'; // the board's key: see static/app.js

  function storedToken() {
    try {
      return window.localStorage.getItem(TOKEN_KEY) || '';
    } catch (e) {
      return ''; // storage disabled: Authorize still works
    }
  }

  function hasHeader(headers, name) {
    var lower = name.toLowerCase();
    return Object.keys(headers).some(function (key) {
      return key.toLowerCase() === lower;
    });
  }

  function addToken(request) {
    request.headers = request.headers || {};
    var token = storedToken();
    if (token && !hasHeader(request.headers, 'Authorization')) {
      request.headers.Authorization = 'Bearer ' + token;
    }
    var method = (request.method || 'GET').toUpperCase();
    if (method !== 'GET' && method !== 'HEAD') {
      request.headers['X-Flightdeck'] = '1';
    }
    return request;
  }

  window.ui = window.SwaggerUIBundle({
    url: '/api/openapi.json',
    dom_id: '#swagger-ui',
    deepLinking: true,
    requestInterceptor: addToken,
  });
})();
