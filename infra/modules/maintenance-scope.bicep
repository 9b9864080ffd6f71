// Dynamic scope of the maintenance configuration: every Azure VM and Arc-enabled server in the
// listed resource groups that carries the tag joins the schedule. A dynamic scope is a
// subscription-level configuration assignment, hence this module's target scope.

targetScope = 'subscription'

param name string
param maintenanceConfigurationId string

@description('Resource groups whose machines the schedule covers.')
param resourceGroups array

@description('Tag a machine must carry to join.')
param tagName string

@description('Accepted values of that tag.')
param tagValues array

@description('Regions to include; empty for all.')
param locations array = []

resource assignment 'Microsoft.Maintenance/configurationAssignments@2023-04-01' = {
  name: name
  properties: {
    maintenanceConfigurationId: maintenanceConfigurationId
    filter: {
      resourceTypes: [
        'Microsoft.Compute/virtualMachines'
        'Microsoft.HybridCompute/machines'
      ]
      resourceGroups: resourceGroups
      osTypes: [
        'Linux'
        'Windows'
      ]
      locations: locations
      tagSettings: {
        tags: {
          '${tagName}': tagValues
        }
        filterOperator: 'Any'
      }
    }
  }
}

output id string = assignment.id
