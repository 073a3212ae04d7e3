// The function app's application settings, built in main.bicep from the resources (see `appSettings`
// there). Set as one resource so the whole set is reviewed and replaced together.
param appName string
param appSettings object

resource app 'Microsoft.Web/sites@2024-04-01' existing = {
  name: appName
}

resource settings 'Microsoft.Web/sites/config@2024-04-01' = {
  parent: app
  name: 'appsettings'
  properties: appSettings
}
