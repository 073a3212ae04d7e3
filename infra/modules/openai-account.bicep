// A new Azure OpenAI account: Entra ID only (local auth disabled), its own subdomain (required for
// Entra tokens and private endpoints), public access off in private-networking mode.
param name string
param location string
param tags object
param privateNetworking bool

resource account 'Microsoft.CognitiveServices/accounts@2024-10-01' = {
  name: name
  location: location
  tags: tags
  kind: 'OpenAI'
  sku: {
    name: 'S0'
  }
  identity: {
    type: 'SystemAssigned'
  }
  properties: {
    customSubDomainName: name
    disableLocalAuth: true
    publicNetworkAccess: privateNetworking ? 'Disabled' : 'Enabled'
    networkAcls: {
      defaultAction: privateNetworking ? 'Deny' : 'Allow'
    }
  }
}

output id string = account.id
output name string = account.name
