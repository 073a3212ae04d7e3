// The function app's application settings, built in main.bicep from the resources (see `appSettings`
// there). A PUT of Microsoft.Web/sites/config 'appsettings' replaces the whole set, so by default
// the settings the app already has are read first (list()) and merged: the template's keys take the
// template's values, every other key keeps its value (GATEWAY_PRICES, GATEWAY_CALLER_LIMITS,
// GATEWAY_HTTP_AUTH, tuning set in the portal or with `az functionapp config appsettings set`).
// This is the pattern of Azure Verified Modules' web/site module (currentAppSettings + union()).
// A key the template stops setting is not removed: see docs/deploy.md ("App settings").
param appName string
param appSettings object

@description('true: keep the settings set outside the template (merge); false: the template\'s set replaces all settings.')
param keepOtherSettings bool

resource app 'Microsoft.Web/sites@2024-04-01' existing = {
  name: appName
}

var currentSettings = keepOtherSettings ? list('${app.id}/config/appsettings', '2024-04-01').properties : {}

resource settings 'Microsoft.Web/sites/config@2024-04-01' = {
  parent: app
  name: 'appsettings'
  properties: union(currentSettings, appSettings)
}
